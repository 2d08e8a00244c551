//! Credentials that arrive without a user name (app tokens, API keys,
//! registry secrets) and revoked access tokens.
//!
//! Such a secret is ≥ 128 random bits, so it is found by the SHA-256 of its
//! value (`credential: sha256 → record`); argon2 is for passwords only. The
//! proposer hashes; the log and the state never hold a secret. A second
//! table (`user ‖ kind ‖ id → sha256`) lists and revokes a user's
//! credentials. Signed access tokens are not stored; revoking one writes a
//! row under its `jti`.

use serde::{Deserialize, Serialize};

use flotilla_storage::ErrorKind;

use super::users::{self, keys_under};
use super::{code, keys};
use crate::rejection::{Refusal, Rejection};
use crate::store::{get_json, put_json, StateRead, StateWrite, Tx};

/// Most credentials one user may hold (of every kind together).
pub const MAX_CREDENTIALS_PER_USER: usize = 1000;
/// Longest credential id and title (bytes).
const MAX_ID_BYTES: usize = 128;
const MAX_TITLE_BYTES: usize = 255;

/// What a credential is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// A Quay-style application token.
    AppToken,
    /// An Artifactory API key.
    ApiKey,
    /// A registry secret (projects surface).
    RegistrySecret,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::AppToken => "app_token",
            CredentialKind::ApiKey => "api_key",
            CredentialKind::RegistrySecret => "registry_secret",
        }
    }
}

/// A credential as stored (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialRecord {
    /// Unique per user and kind (a UUID for app tokens).
    pub id: String,
    pub user: String,
    pub kind: CredentialKind,
    #[serde(default)]
    pub title: String,
    pub created_ms: u64,
    /// When it stops working; `None`: never.
    #[serde(default)]
    pub expires_ms: Option<u64>,
}

impl CredentialRecord {
    /// Whether it works at `now_ms`.
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.expires_ms.is_none_or(|expires| now_ms < expires)
    }
}

/// A revoked signed token, kept until it would have expired anyway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedToken {
    pub user: String,
    pub expires_at_secs: u64,
}

/// Parses the hex SHA-256 of a secret.
pub fn parse_hash(hex_hash: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(hex_hash).ok()?;
    bytes.try_into().ok()
}

pub(super) fn add(tx: &mut Tx<'_>, hash: &str, credential: &CredentialRecord) -> Result<(), Refusal> {
    let invalid = |message: &str| -> Refusal {
        Rejection::new(ErrorKind::InvalidArgument, code::CREDENTIAL_INVALID, message.to_owned()).into()
    };
    let Some(hash_bytes) = parse_hash(hash) else {
        return Err(invalid("a credential is stored by the hex SHA-256 of its secret"));
    };
    if credential.id.is_empty() || credential.id.len() > MAX_ID_BYTES {
        return Err(invalid("a credential id is 1 to 128 bytes"));
    }
    if credential.title.len() > MAX_TITLE_BYTES {
        return Err(invalid("a credential title is at most 255 bytes"));
    }
    if !users::exists(tx, &credential.user)? {
        return Err(users::unknown(&credential.user).into());
    }
    let by_user = keys::user_credential(&credential.user, credential.kind.as_str(), &credential.id);
    if tx.get(&keys::credential(&hash_bytes))?.is_some() || tx.get(&by_user)?.is_some() {
        let message = format!("credential {} already exists", credential.id);
        return Err(Rejection::new(ErrorKind::AlreadyExists, code::CREDENTIAL_EXISTS, message).into());
    }
    if keys_under(tx, &keys::user_credentials(&credential.user))?.len() >= MAX_CREDENTIALS_PER_USER {
        let message =
            format!("user {} holds {MAX_CREDENTIALS_PER_USER} credentials; revoke some first", credential.user);
        return Err(Rejection::new(ErrorKind::Conflict, code::CREDENTIAL_LIMIT, message).into());
    }
    put_json(tx, keys::credential(&hash_bytes), credential);
    tx.put(by_user, hash_bytes.to_vec());
    Ok(())
}

pub(super) fn revoke(tx: &mut Tx<'_>, user: &str, kind: CredentialKind, id: &str) -> Result<(), Refusal> {
    let by_user = keys::user_credential(user, kind.as_str(), id);
    let Some(hash) = tx.get(&by_user)? else {
        let message = format!("credential {id} does not exist");
        return Err(Rejection::new(ErrorKind::NotFound, code::CREDENTIAL_UNKNOWN, message).into());
    };
    let hash: [u8; 32] = hash.try_into().map_err(|_| super::groups::corrupt("credential hash"))?;
    tx.delete(&keys::credential(&hash));
    tx.delete(&by_user);
    Ok(())
}

/// Forgets every credential of a deleted user.
pub(super) fn forget_user(tx: &mut Tx<'_>, user: &str) -> Result<(), Refusal> {
    for by_user in keys_under(tx, &keys::user_credentials(user))? {
        if let Some(hash) = tx.get(&by_user)? {
            let hash: [u8; 32] = hash.try_into().map_err(|_| super::groups::corrupt("credential hash"))?;
            tx.delete(&keys::credential(&hash));
        }
        tx.delete(&by_user);
    }
    Ok(())
}

pub(super) fn revoke_token(tx: &mut Tx<'_>, jti: &str, revoked: &RevokedToken) -> Result<(), Refusal> {
    if jti.is_empty() || jti.len() > MAX_ID_BYTES {
        let message = "a token id is 1 to 128 bytes";
        return Err(Rejection::new(ErrorKind::InvalidArgument, code::CREDENTIAL_INVALID, message).into());
    }
    if get_json::<RevokedToken>(tx, &keys::revoked_token(jti))?.is_none() {
        put_json(tx, keys::revoked_token(jti), revoked);
    }
    Ok(())
}

/// The SHA-256 of a secret: its key in the credential table.
pub fn secret_hash(secret: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(secret.as_bytes()).into()
}
