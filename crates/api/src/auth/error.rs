//! The one error type of authentication; messages never echo credentials.

use http::StatusCode;

/// Why a request could not be authenticated, or a token not issued.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Unknown user, wrong password, or an account that cannot log in.
    #[error("invalid username or password")]
    BadCredentials,
    /// A credential header that cannot be parsed; the text says what, never the value.
    #[error("malformed credentials: {0}")]
    MalformedHeader(String),
    /// A well-signed token whose `exp` has passed.
    #[error("token expired")]
    ExpiredToken,
    /// A token that is not ours, was tampered with, or whose user is gone.
    #[error("invalid token")]
    InvalidToken,
    /// A scope that is not `type:name:actions`.
    #[error("invalid scope: {0}")]
    InvalidScope(String),
    /// No token secret yet (the cluster is not bootstrapped).
    #[error("tokens are unavailable until the cluster is bootstrapped")]
    NoTokenSecret,
    /// The replicated state could not be read.
    #[error("accounts are unavailable: {0}")]
    Unavailable(String),
    /// The password-hashing task failed.
    #[error("authentication failed internally: {0}")]
    Internal(String),
}

impl AuthError {
    /// The HTTP status this error maps to at any surface.
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::BadCredentials
            | AuthError::MalformedHeader(_)
            | AuthError::ExpiredToken
            | AuthError::InvalidToken => StatusCode::UNAUTHORIZED,
            AuthError::InvalidScope(_) => StatusCode::BAD_REQUEST,
            AuthError::NoTokenSecret | AuthError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AuthError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}
