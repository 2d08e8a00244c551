//! Registry tokens: compact HS256 JWTs with Docker token-spec claims.
//!
//! `base64url(header) . base64url(claims) . base64url(HMAC-SHA256(secret, first two parts))`;
//! the header is always `{"alg":"HS256","typ":"JWT"}` and nothing else is accepted.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::AuthError;

/// `iss` of every token Flotilla issues.
pub(crate) const ISSUER: &str = "flotilla";
/// Tolerated clock difference between nodes when checking `exp` and `nbf`.
pub(crate) const CLOCK_LEEWAY_SECS: u64 = 60;
/// Longest token accepted (bytes); larger input is rejected before any decoding.
const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Shortest token secret accepted (bytes); a shorter key is not a secret.
pub(crate) const MIN_SECRET_BYTES: usize = 16;
/// The only JOSE header Flotilla writes or accepts.
const HEADER_JSON: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

type HmacSha256 = Hmac<Sha256>;

/// One granted access in a token (Docker token spec `access` entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    #[serde(rename = "type")]
    pub resource_type: String,
    pub name: String,
    pub actions: Vec<String>,
}

/// A token as handed to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The compact JWT.
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// RFC 3339 time of issue.
    pub issued_at: String,
}

/// The claims Flotilla writes; all are required when reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub jti: String,
    pub access: Vec<Access>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

/// Signs `claims` into a compact JWT.
pub(crate) fn sign(claims: &Claims, secret: &[u8]) -> Result<String, AuthError> {
    let claims_json = serde_json::to_vec(claims).map_err(|error| AuthError::Internal(error.to_string()))?;
    let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(HEADER_JSON), URL_SAFE_NO_PAD.encode(claims_json));
    let signature = mac(secret, &signing_input)?.finalize().into_bytes();
    Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

/// Checks the signature (constant time), the header, `iss`, `exp` and `nbf` at `now`.
pub(crate) fn verify(token: &str, secret: &[u8], now_unix_secs: u64) -> Result<Claims, AuthError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::InvalidToken);
    }
    let (signing_input, signature) = token.rsplit_once('.').ok_or(AuthError::InvalidToken)?;
    let (header, claims) = signing_input.split_once('.').ok_or(AuthError::InvalidToken)?;
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| AuthError::InvalidToken)?;
    mac(secret, signing_input)?.verify_slice(&signature).map_err(|_| AuthError::InvalidToken)?;
    let header: Header = decode_json(header)?;
    if header.alg != "HS256" {
        return Err(AuthError::InvalidToken);
    }
    let claims: Claims = decode_json(claims)?;
    check_claims(&claims, now_unix_secs)?;
    Ok(claims)
}

/// Whether a Basic password is shaped like one of our tokens (worth verifying as one).
pub(crate) fn looks_like_token(text: &str) -> bool {
    text.starts_with("eyJ") && text.bytes().filter(|byte| *byte == b'.').count() == 2
}

fn check_claims(claims: &Claims, now: u64) -> Result<(), AuthError> {
    if claims.iss != ISSUER {
        return Err(AuthError::InvalidToken);
    }
    if claims.nbf > now.saturating_add(CLOCK_LEEWAY_SECS) {
        return Err(AuthError::InvalidToken);
    }
    if claims.exp.saturating_add(CLOCK_LEEWAY_SECS) < now {
        return Err(AuthError::ExpiredToken);
    }
    Ok(())
}

fn mac(secret: &[u8], signing_input: &str) -> Result<HmacSha256, AuthError> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(AuthError::NoTokenSecret);
    }
    let mut mac = HmacSha256::new_from_slice(secret).map_err(|error| AuthError::Internal(error.to_string()))?;
    mac.update(signing_input.as_bytes());
    Ok(mac)
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, AuthError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| AuthError::InvalidToken)?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::InvalidToken)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_700_000_000;

    fn claims(exp: u64) -> Claims {
        Claims {
            iss: ISSUER.into(),
            sub: "alice".into(),
            aud: "flotilla".into(),
            exp,
            nbf: NOW,
            iat: NOW,
            jti: "id".into(),
            access: vec![Access { resource_type: "repository".into(), name: "a".into(), actions: vec!["pull".into()] }],
        }
    }

    #[test]
    fn round_trip_and_shape() {
        let token = sign(&claims(NOW + 300), SECRET).unwrap();
        assert!(looks_like_token(&token));
        assert!(token.starts_with("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."));
        assert_eq!(verify(&token, SECRET, NOW).unwrap(), claims(NOW + 300));
    }

    #[test]
    fn expiry_and_not_before_have_leeway() {
        let token = sign(&claims(NOW), SECRET).unwrap();
        assert!(verify(&token, SECRET, NOW + CLOCK_LEEWAY_SECS).is_ok());
        assert!(matches!(verify(&token, SECRET, NOW + CLOCK_LEEWAY_SECS + 1), Err(AuthError::ExpiredToken)));
        assert!(verify(&token, SECRET, NOW - CLOCK_LEEWAY_SECS).is_ok());
        assert!(matches!(verify(&token, SECRET, NOW - CLOCK_LEEWAY_SECS - 1), Err(AuthError::InvalidToken)));
    }

    #[test]
    fn wrong_secret_alg_or_issuer_is_rejected() {
        let token = sign(&claims(NOW + 300), SECRET).unwrap();
        assert!(matches!(verify(&token, b"another-secret-of-enough-length", NOW), Err(AuthError::InvalidToken)));
        let mut foreign = claims(NOW + 300);
        foreign.iss = "someone-else".into();
        assert!(verify(&sign(&foreign, SECRET).unwrap(), SECRET, NOW).is_err());
        let (_, rest) = token.split_once('.').unwrap();
        let none_alg = format!("{}.{rest}", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#));
        assert!(verify(&none_alg, SECRET, NOW).is_err());
    }

    #[test]
    fn short_secret_is_refused() {
        assert!(matches!(sign(&claims(NOW), b"short"), Err(AuthError::NoTokenSecret)));
    }

    proptest! {
        #[test]
        fn never_panics_on_random_tokens(text in "[A-Za-z0-9_.=-]{0,200}") {
            prop_assert!(verify(&text, SECRET, NOW).is_err());
        }

        #[test]
        fn any_single_byte_change_is_rejected(index in 0usize..400, replacement in "[A-Za-z0-9_-]") {
            let token = sign(&claims(NOW + 300), SECRET).unwrap();
            let index = index % token.len();
            let mut bytes = token.clone().into_bytes();
            bytes[index] = replacement.as_bytes()[0];
            let tampered = String::from_utf8(bytes).unwrap();
            if tampered != token {
                prop_assert!(verify(&tampered, SECRET, NOW).is_err());
            }
        }
    }
}
