//! Parsing credential headers: `Authorization: Basic|Bearer …` and
//! `X-JFrog-Art-Api`. Total over arbitrary bytes (never panics), and errors
//! never quote the header.

use std::fmt;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use http::header::AUTHORIZATION;
use http::HeaderMap;

use super::AuthError;

/// Header carrying an Artifactory API key; treated as a bearer token for now.
pub const ART_API_KEY_HEADER: &str = "x-jfrog-art-api";
/// Longest credential header accepted (bytes); tokens with long access lists fit easily.
const MAX_CREDENTIAL_HEADER_BYTES: usize = 8 * 1024;

/// Standard base64, padded or not: clients disagree on padding.
const BASIC_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Credentials presented by a request. `Debug` redacts the secrets.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `Authorization: Basic`: a password, or one of our tokens used as the password.
    Basic { user: String, password: String },
    /// `Authorization: Bearer` or `X-JFrog-Art-Api`: a token.
    Bearer(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { user, .. } => write!(f, "Basic {{ user: {user:?}, password: <redacted> }}"),
            Credentials::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

/// The credentials of a request: `Authorization` first, then `X-JFrog-Art-Api`;
/// `None` when neither is present.
pub fn from_headers(headers: &HeaderMap) -> Result<Option<Credentials>, AuthError> {
    if let Some(value) = headers.get(AUTHORIZATION) {
        return parse_authorization(value.as_bytes()).map(Some);
    }
    match headers.get(ART_API_KEY_HEADER) {
        Some(value) => parse_api_key(value.as_bytes()).map(Some),
        None => Ok(None),
    }
}

/// Parses the value of an `Authorization` header (`Basic` or `Bearer`, any case).
pub fn parse_authorization(value: &[u8]) -> Result<Credentials, AuthError> {
    let text = header_text(value)?;
    let (scheme, rest) =
        text.split_once(|c: char| c.is_ascii_whitespace()).ok_or_else(|| malformed("missing credentials"))?;
    let rest = rest.trim_matches(|c: char| c.is_ascii_whitespace());
    if rest.is_empty() {
        return Err(malformed("missing credentials"));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        return parse_basic(rest);
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok(Credentials::Bearer(rest.to_owned()));
    }
    Err(malformed("unsupported authorization scheme"))
}

fn parse_api_key(value: &[u8]) -> Result<Credentials, AuthError> {
    let key = header_text(value)?;
    if key.is_empty() {
        return Err(malformed("empty API key"));
    }
    Ok(Credentials::Bearer(key.to_owned()))
}

fn parse_basic(encoded: &str) -> Result<Credentials, AuthError> {
    let decoded = BASIC_BASE64.decode(encoded).map_err(|_| malformed("Basic credentials are not base64"))?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed("Basic credentials are not UTF-8"))?;
    let (user, password) = decoded.split_once(':').ok_or_else(|| malformed("Basic credentials lack ':'"))?;
    if user.is_empty() {
        return Err(malformed("empty user name"));
    }
    Ok(Credentials::Basic { user: user.to_owned(), password: password.to_owned() })
}

/// The header as trimmed UTF-8 text, bounded in length.
fn header_text(value: &[u8]) -> Result<&str, AuthError> {
    if value.len() > MAX_CREDENTIAL_HEADER_BYTES {
        return Err(malformed("credential header too long"));
    }
    let text = std::str::from_utf8(value).map_err(|_| malformed("credential header is not UTF-8"))?;
    Ok(text.trim_matches(|c: char| c.is_ascii_whitespace()))
}

fn malformed(reason: &str) -> AuthError {
    AuthError::MalformedHeader(reason.to_owned())
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use proptest::prelude::*;

    use super::*;

    fn basic(user_password: &str) -> Vec<u8> {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(user_password)).into_bytes()
    }

    #[test]
    fn basic_with_colon_in_password() {
        let parsed = parse_authorization(&basic("alice:pa:ss")).unwrap();
        assert_eq!(parsed, Credentials::Basic { user: "alice".into(), password: "pa:ss".into() });
    }

    #[test]
    fn scheme_is_case_insensitive_and_padding_optional() {
        let parsed = parse_authorization(b"bAsIc   YWxpY2U6cHc").unwrap();
        assert_eq!(parsed, Credentials::Basic { user: "alice".into(), password: "pw".into() });
        assert_eq!(parse_authorization(b"BEARER abc.def.ghi").unwrap(), Credentials::Bearer("abc.def.ghi".into()));
    }

    #[test]
    fn malformed_inputs() {
        for bad in [&b""[..], b"Basic", b"Basic ", b"Basic !!!", b"Digest abc", b"Basic OmZvbw==", b"\xff\xfe"] {
            assert!(matches!(parse_authorization(bad), Err(AuthError::MalformedHeader(_))), "{bad:?}");
        }
        assert!(parse_authorization(&basic("nocolon")).is_err());
    }

    #[test]
    fn header_precedence_and_api_key() {
        let mut headers = HeaderMap::new();
        assert_eq!(from_headers(&headers).unwrap(), None);
        headers.insert(ART_API_KEY_HEADER, HeaderValue::from_static("key123"));
        assert_eq!(from_headers(&headers).unwrap(), Some(Credentials::Bearer("key123".into())));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer tok"));
        assert_eq!(from_headers(&headers).unwrap(), Some(Credentials::Bearer("tok".into())));
    }

    #[test]
    fn debug_redacts_secrets() {
        let basic = Credentials::Basic { user: "alice".into(), password: "hunter2".into() };
        assert!(!format!("{basic:?}").contains("hunter2"));
        assert!(!format!("{:?}", Credentials::Bearer("tok".into())).contains("tok"));
    }

    proptest! {
        #[test]
        fn never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_authorization(&bytes);
            let _ = parse_api_key(&bytes);
        }

        #[test]
        fn never_panics_on_scheme_like_input(scheme in "(?i)(basic|bearer|digest)?", rest in "\\PC{0,200}") {
            let _ = parse_authorization(format!("{scheme} {rest}").as_bytes());
        }

        #[test]
        fn basic_round_trips(user in "[^:\\x00]{1,40}", password in "\\PC{0,60}") {
            let parsed = parse_authorization(&basic(&format!("{user}:{password}"))).unwrap();
            prop_assert_eq!(parsed, Credentials::Basic { user, password });
        }
    }
}
