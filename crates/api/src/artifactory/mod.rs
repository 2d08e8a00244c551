//! The JFrog Artifactory / Container Registry compatible API on `/artifactory/api/`.
//!
//! So far the storage maintenance endpoints an operator's tooling calls, and
//! the administration of users, groups and permission targets:
//!
//! | method and path | what |
//! |---|---|
//! | `POST /artifactory/api/system/storage/gc` | start garbage collection (200, `text/plain`) |
//! | `POST /artifactory/api/system/storage/optimize` | start storage optimization (200, `text/plain`) |
//! | `GET /artifactory/api/tasks` | scheduled and running background tasks |
//! | `GET/PUT/POST/DELETE /artifactory/api/security/users[/{name}]` | users ([`security::users`]) |
//! | `GET/PUT/POST/DELETE /artifactory/api/security/groups[/{name}]` | groups ([`security::groups`]) |
//! | `GET/PUT/DELETE /artifactory/api/security/permissions[/{name}]` | permission targets, v1 shape |
//! | `GET/HEAD/PUT/POST/DELETE /artifactory/api/v2/security/permissions[/{name}]` | permission targets, v2 shape |
//!
//! Errors are Artifactory's `{"errors":[{"status":404,"message":"…"}]}`; a
//! 401 carries `WWW-Authenticate: Basic realm="Artifactory Realm"`.
//! Everything here needs an administrator.

mod body;
pub mod security;
pub mod system;
pub mod tasks;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use flotilla_model::StoreError;
use flotilla_raft::{MetaError, WriteError};

use crate::auth::{AuthError, Principal};
use crate::error::ServiceError;
use crate::state::AppState;

/// Routes of `/artifactory/api/`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/artifactory/api/system/storage/gc", post(system::run_gc))
        .route("/artifactory/api/system/storage/optimize", post(system::optimize))
        .route("/artifactory/api/tasks", get(tasks::list))
        .merge(security::router())
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

impl From<MetaError> for ArtifactoryError {
    fn from(error: MetaError) -> Self {
        ServiceError::from(error).into()
    }
}

impl From<StoreError> for ArtifactoryError {
    fn from(error: StoreError) -> Self {
        ServiceError::from(error).into()
    }
}

impl From<WriteError> for ArtifactoryError {
    fn from(error: WriteError) -> Self {
        ServiceError::from(error).into()
    }
}

impl From<AuthError> for ArtifactoryError {
    fn from(error: AuthError) -> Self {
        ArtifactoryError::new(error.status(), error.to_string())
    }
}

/// Only administrators may use these endpoints; returns the caller.
async fn require_admin(state: &AppState, headers: &HeaderMap) -> Result<Principal, ArtifactoryError> {
    match state.auth.authenticate(headers).await? {
        Some(principal) if principal.is_admin() => Ok(principal),
        Some(_) => Err(ArtifactoryError::new(StatusCode::FORBIDDEN, "Forbidden: an admin user is required")),
        None => Err(ArtifactoryError::new(StatusCode::UNAUTHORIZED, "Unauthorized")),
    }
}

/// `http(s)://<host the client used>/artifactory`, the base of the `uri`s in answers.
fn base_url(headers: &HeaderMap) -> String {
    format!("{}/artifactory", crate::origin::origin(headers))
}

/// A `text/plain` answer, as Artifactory gives for deletions.
fn text(status: StatusCode, message: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], message).into_response()
}
