//! Authentication and authorization, shared by every REST surface.
//!
//! ```text
//!  request headers
//!       │ credentials::from_headers (never panics; redacted Debug)
//!       ├─ none ───────────────────────────► Principal::anonymous (the `anonymous` account's rights)
//!       ├─ Basic user:password ─► cache hit? ─────────────────────► Principal (user's current rights)
//!       │     │                    └─ argon2 on spawn_blocking ──┘   (bounded; only successes cached)
//!       │     ├─ password is an app token / API key ─┐
//!       │     └─ password is one of our tokens ─┐     │
//!       └─ Bearer / X-JFrog-Art-Api ────────────┴─────┴─ token::verify (not revoked) ─► Principal (token access ∩ rights)
//!                                                     └─ sha256 → credential index ──► Principal (user's rights, no admin)
//! ```
//!
//! Accounts, credentials and the token secret come from a [`UserDirectory`]
//! (the replicated state). Each request reads the identity revision once;
//! an account's permissions are compiled once per revision
//! ([`Authenticator::account`]), so a check is a lookup and a change to any
//! user, group, permission target or credential applies to the next request,
//! tokens included.
//! Tokens are HS256 JWTs in the Docker token-spec shape, issued by
//! [`Authenticator::issue_token`] and by the [`token_endpoint`] handler.
//! This module never names openraft, tonic or RocksDB types.

mod authenticator;
mod cache;
mod credentials;
mod directory;
mod error;
mod password;
mod principal;
mod scope;
pub mod secrets;
pub(crate) mod time;
mod token;
mod token_endpoint;

#[cfg(test)]
mod tests;

pub use authenticator::{Authenticator, DEFAULT_TOKEN_TTL};
pub use credentials::{parse_authorization, Credentials, ART_API_KEY_HEADER};
pub use directory::{MemoryDirectory, UserDirectory};
pub use error::AuthError;
pub use password::{hash_password, verify_password};
pub use principal::{Action, Principal, ANONYMOUS_USER};
pub use scope::Scope;
pub use token::{Access, IssuedToken};
pub use token_endpoint::{bearer_challenge, token_endpoint, BearerError, DEFAULT_SERVICE};

/// Re-exported so callers of this module need not name the model crate.
pub use flotilla_model::identity::{Account, Grant, UserRecord};
