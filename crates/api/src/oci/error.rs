//! The OCI error registry, rendered once: `{"errors":[{"code","message","detail"}]}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// Error codes of the distribution spec (plus `UNAVAILABLE` for elections).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OciErrorCode {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    RangeInvalid,
    Unavailable,
    Internal,
}

impl OciErrorCode {
    /// The spec's code string.
    pub fn code(self) -> &'static str {
        match self {
            OciErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            OciErrorCode::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            OciErrorCode::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            OciErrorCode::DigestInvalid => "DIGEST_INVALID",
            OciErrorCode::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            OciErrorCode::ManifestInvalid => "MANIFEST_INVALID",
            OciErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            OciErrorCode::NameInvalid => "NAME_INVALID",
            OciErrorCode::NameUnknown => "NAME_UNKNOWN",
            OciErrorCode::SizeInvalid => "SIZE_INVALID",
            OciErrorCode::Unauthorized => "UNAUTHORIZED",
            OciErrorCode::Denied => "DENIED",
            OciErrorCode::Unsupported => "UNSUPPORTED",
            OciErrorCode::TooManyRequests => "TOOMANYREQUESTS",
            OciErrorCode::RangeInvalid => "BLOB_UPLOAD_INVALID",
            OciErrorCode::Unavailable => "UNAVAILABLE",
            OciErrorCode::Internal => "UNKNOWN",
        }
    }

    /// The HTTP status the spec pairs with the code.
    pub fn status(self) -> StatusCode {
        match self {
            OciErrorCode::BlobUnknown
            | OciErrorCode::BlobUploadUnknown
            | OciErrorCode::ManifestUnknown
            | OciErrorCode::NameUnknown => StatusCode::NOT_FOUND,
            OciErrorCode::BlobUploadInvalid
            | OciErrorCode::DigestInvalid
            | OciErrorCode::ManifestBlobUnknown
            | OciErrorCode::ManifestInvalid
            | OciErrorCode::NameInvalid
            | OciErrorCode::SizeInvalid => StatusCode::BAD_REQUEST,
            OciErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            OciErrorCode::Denied => StatusCode::FORBIDDEN,
            OciErrorCode::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
            OciErrorCode::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            OciErrorCode::RangeInvalid => StatusCode::RANGE_NOT_SATISFIABLE,
            OciErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            OciErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An OCI error response, with optional extra headers.
#[derive(Debug)]
pub struct OciError {
    pub code: OciErrorCode,
    pub status: StatusCode,
    pub message: String,
    pub detail: Value,
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl OciError {
    pub fn new(code: OciErrorCode, message: impl Into<String>) -> Self {
        OciError { code, status: code.status(), message: message.into(), detail: Value::Null, headers: Vec::new() }
    }

    /// Overrides the status (for example 413 with `SIZE_INVALID`).
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn with_detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }

    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// 500 with a generic message; the cause is logged, not sent.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        OciError::new(OciErrorCode::Internal, "internal error")
    }
}

impl IntoResponse for OciError {
    fn into_response(self) -> Response {
        let body = json!({"errors": [{"code": self.code.code(), "message": self.message, "detail": self.detail}]});
        let mut response = (self.status, axum::Json(body)).into_response();
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

/// Result of an OCI handler.
pub type OciResult<T = Response> = Result<T, OciError>;
