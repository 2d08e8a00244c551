//! The JFrog Artifactory / Container Registry compatible API on `/artifactory/api/`.
//!
//! So far the storage maintenance endpoints an operator's tooling calls:
//!
//! | method and path | what |
//! |---|---|
//! | `POST /artifactory/api/system/storage/gc` | start garbage collection (200, `text/plain`) |
//! | `POST /artifactory/api/system/storage/optimize` | start storage optimization (200, `text/plain`) |
//! | `GET /artifactory/api/tasks` | scheduled and running background tasks |
//!
//! Errors are Artifactory's `{"errors":[{"status":404,"message":"…"}]}`.
//! Everything here needs an administrator.

pub mod system;
pub mod tasks;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::error::ServiceError;
use crate::state::AppState;

/// Routes of `/artifactory/api/`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/artifactory/api/system/storage/gc", post(system::run_gc))
        .route("/artifactory/api/system/storage/optimize", post(system::optimize))
        .route("/artifactory/api/tasks", get(tasks::list))
}

/// An error in Artifactory's format.
#[derive(Debug)]
pub struct ArtifactoryError {
    status: StatusCode,
    message: String,
}

impl ArtifactoryError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ArtifactoryError { status, message: message.into() }
    }
}

impl IntoResponse for ArtifactoryError {
    fn into_response(self) -> Response {
        let body = json!({"errors": [{"status": self.status.as_u16(), "message": self.message}]});
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"Artifactory Realm\""));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<ServiceError> for ArtifactoryError {
    fn from(error: ServiceError) -> Self {
        ArtifactoryError::new(error.status(), error.message)
    }
}

/// Only administrators may use these endpoints.
async fn require_admin(state: &AppState, headers: &HeaderMap) -> Result<(), ArtifactoryError> {
    match state.auth.authenticate(headers).await {
        Ok(Some(principal)) if principal.admin => Ok(()),
        Ok(Some(_)) => Err(ArtifactoryError::new(StatusCode::FORBIDDEN, "Forbidden: an admin user is required")),
        Ok(None) => Err(ArtifactoryError::new(StatusCode::UNAUTHORIZED, "Unauthorized")),
        Err(error) => Err(ArtifactoryError::new(StatusCode::UNAUTHORIZED, error.to_string())),
    }
}
