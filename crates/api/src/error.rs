//! The one error of a service call, in no surface's format.
//!
//! Every failure below the surfaces — a command `apply` refused, no leader
//! in time, a store fault — becomes a [`ServiceError`]: a generic
//! [`ErrorKind`], the domain's `code` and a message. Each surface renders it
//! once in its own format (OCI `{"errors":[{code,message,detail}]}`,
//! Artifactory `{"errors":[{status,message}]}`, the cluster API's
//! `{code,message}`), mapping `kind` to a status with [`ServiceError::status`]
//! and, where its protocol has finer codes, reading `code`.

use std::collections::BTreeMap;

use http::StatusCode;

use flotilla_model::{ErrorKind, Rejection, StoreError};
use flotilla_raft::{MetaError, WriteError};

/// Seconds a client should wait before retrying while no leader answers.
pub const RETRY_AFTER_SECONDS: &str = "1";

/// Why a service call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ServiceError {
    pub kind: ErrorKind,
    /// The domain's code (`"MANIFEST_BLOB_UNKNOWN"`, `"TASK_CONFLICT"`, `"UNAVAILABLE"`…).
    pub code: String,
    pub message: String,
    /// Facts a client may need (`digest` → the digest that caused the error).
    pub detail: BTreeMap<String, String>,
}

impl ServiceError {
    pub fn new(kind: ErrorKind, code: &str, message: impl Into<String>) -> Self {
        ServiceError { kind, code: code.to_owned(), message: message.into(), detail: BTreeMap::new() }
    }

    pub fn not_found(code: &str, message: impl Into<String>) -> Self {
        ServiceError::new(ErrorKind::NotFound, code, message)
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        ServiceError::new(ErrorKind::Internal, "INTERNAL", cause.to_string())
    }

    /// The HTTP status of this kind on a surface with no finer rule.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::AlreadyExists | ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
            ErrorKind::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// `Retry-After` for an error the client should retry (no leader yet).
    pub fn retry_after(&self) -> Option<&'static str> {
        (self.kind == ErrorKind::Unavailable).then_some(RETRY_AFTER_SECONDS)
    }
}

impl From<Rejection> for ServiceError {
    fn from(rejection: Rejection) -> Self {
        ServiceError {
            kind: rejection.kind,
            code: rejection.code,
            message: rejection.message,
            detail: rejection.detail,
        }
    }
}

impl From<MetaError> for ServiceError {
    fn from(error: MetaError) -> Self {
        match error {
            MetaError::Unavailable(message) => ServiceError::new(ErrorKind::Unavailable, "UNAVAILABLE", message),
            MetaError::Fatal(message) => ServiceError::internal(message),
        }
    }
}

impl From<WriteError> for ServiceError {
    fn from(error: WriteError) -> Self {
        match error {
            WriteError::Rejected(rejection) => rejection.into(),
            WriteError::Unavailable(message) => ServiceError::new(ErrorKind::Unavailable, "UNAVAILABLE", message),
            WriteError::Fatal(message) => ServiceError::internal(message),
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        ServiceError::internal(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_keep_their_kind_code_and_detail() {
        let rejection = Rejection::new(ErrorKind::PreconditionFailed, "MANIFEST_BLOB_UNKNOWN", "missing")
            .with_detail("digest", "sha256:ab");
        let error = ServiceError::from(WriteError::Rejected(rejection));
        assert_eq!(error.status(), StatusCode::PRECONDITION_FAILED);
        assert_eq!(error.code, "MANIFEST_BLOB_UNKNOWN");
        assert_eq!(error.detail["digest"], "sha256:ab");
        assert_eq!(error.retry_after(), None);
    }

    #[test]
    fn no_leader_is_503_with_retry_after_and_a_fatal_replica_is_500() {
        let unavailable = ServiceError::from(WriteError::Unavailable("election".into()));
        assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(unavailable.retry_after(), Some("1"));
        assert_eq!(ServiceError::from(MetaError::Fatal("disk".into())).status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(ServiceError::from(StoreError("x".into())).status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
