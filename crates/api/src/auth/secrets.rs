//! Credential secrets: what app tokens and API keys look like.
//!
//! A secret is a kind prefix and 256 random bits in base64url (43
//! characters). The prefix tells the authenticator to look the secret up by
//! its hash instead of running argon2 on it as a password; the state keeps
//! only `sha256(secret)`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;

use flotilla_model::identity::CredentialKind;

/// The user name Quay accepts with an app token in place of the owner's name.
pub const APP_USER: &str = "$app";
/// Random bytes in a secret.
const SECRET_BYTES: usize = 32;
/// Length of the base64url encoding of [`SECRET_BYTES`].
const ENCODED_BYTES: usize = 43;

/// The prefix of a secret of `kind`.
pub fn prefix(kind: CredentialKind) -> &'static str {
    match kind {
        CredentialKind::AppToken => "flta_",
        CredentialKind::ApiKey => "fltk_",
        CredentialKind::RegistrySecret => "flts_",
    }
}

/// A new secret of `kind`.
pub fn generate(kind: CredentialKind) -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{}{}", prefix(kind), URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether `text` has the shape of a secret of any kind.
pub fn looks_like_credential(text: &str) -> bool {
    [CredentialKind::AppToken, CredentialKind::ApiKey, CredentialKind::RegistrySecret].iter().any(|kind| {
        text.strip_prefix(prefix(*kind)).is_some_and(|rest| {
            rest.len() == ENCODED_BYTES && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn generated_secrets_are_recognised_and_distinct() {
        let one = generate(CredentialKind::AppToken);
        let two = generate(CredentialKind::AppToken);
        assert!(looks_like_credential(&one) && looks_like_credential(&two));
        assert_ne!(one, two);
        assert!(one.starts_with("flta_"));
        assert!(looks_like_credential(&generate(CredentialKind::ApiKey)));
    }

    #[test]
    fn passwords_and_tokens_are_not_credentials() {
        assert!(!looks_like_credential("hunter2"));
        assert!(!looks_like_credential("flta_short"));
        assert!(!looks_like_credential("eyJhbGciOiJIUzI1NiJ9.e30.sig"));
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,80}") {
            let _ = looks_like_credential(&text);
        }
    }
}
