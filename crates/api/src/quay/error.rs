//! Quay's `ApiError`: `{"status", "error_message", "error_type", "title", "detail", "type"}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::auth::AuthError;
use crate::error::ServiceError;

/// An error in Quay's format.
#[derive(Debug)]
pub struct QuayError {
    status: StatusCode,
    message: String,
}

impl QuayError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        QuayError { status, message: message.into() }
    }

    /// Quay's `error_type` for a status.
    fn error_type(&self) -> &'static str {
        match self.status {
            StatusCode::BAD_REQUEST => "invalid_request",
            StatusCode::UNAUTHORIZED => "invalid_token",
            StatusCode::FORBIDDEN => "insufficient_scope",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::CONFLICT => "conflict",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            _ => "internal_error",
        }
    }
}

impl IntoResponse for QuayError {
    fn into_response(self) -> Response {
        let error_type = self.error_type();
        let body = json!({
            "status": self.status.as_u16(),
            "error_message": self.message,
            "error_type": error_type,
            "title": error_type,
            "detail": self.message,
            "type": format!("/api/v1/error/{error_type}"),
        });
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            // Basic with a password or an app token's owner, or Bearer with an access token.
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"Quay\""));
        }
        if let Some(retry_after) = (self.status == StatusCode::SERVICE_UNAVAILABLE).then_some("1") {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(retry_after));
        }
        response
    }
}

impl From<ServiceError> for QuayError {
    fn from(error: ServiceError) -> Self {
        QuayError::new(error.status(), error.message)
    }
}

impl From<AuthError> for QuayError {
    fn from(error: AuthError) -> Self {
        QuayError::new(error.status(), error.to_string())
    }
}
