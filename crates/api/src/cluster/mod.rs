//! The native cluster API on `/_cluster/` (admin only):
//!
//! | method and path | what |
//! |---|---|
//! | `GET /_cluster/health` | green / yellow / red, with the reasons |
//! | `GET /_cluster/state` | cluster id, leader, term, nodes, layout summary |
//! | `GET /_cluster/nodes` | the nodes |
//! | `GET /_cluster/nodes/{id}` | one node |
//! | `POST /_cluster/nodes/{id}/drain` | move the node's data away, then remove it |
//! | `DELETE /_cluster/nodes/{id}` | remove a node now (a dead one; its copies are re-made from replicas) |
//! | `GET /_cluster/layout` | the partition layout |
//! | `/_cluster/tasks…` | cluster tasks (see [`tasks`]) |
//! | `/_cluster/model…` | the model version the cluster runs, per node (see [`model_version`]) |
//!
//! Errors are `{"code": "...", "message": "..."}` with the HTTP status.
//! The facts come from a [`ClusterAdmin`] the node crate implements (it knows
//! Raft; this crate does not).

pub mod model;
pub mod model_version;
pub mod tasks;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

use flotilla_model::ErrorKind;

use crate::error::ServiceError;
use crate::state::AppState;
use model::{ClusterState, Health, LayoutView, NodeView};

/// Why a cluster operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the cluster's state (removing the last voter…).
    #[error("{0}")]
    Conflict(String),
    /// No leader reachable; retry.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

/// What the cluster API asks of the node.
#[async_trait::async_trait]
pub trait ClusterAdmin: Send + Sync + 'static {
    async fn health(&self) -> Health;
    async fn state(&self) -> Result<ClusterState, AdminError>;
    async fn layout(&self) -> Result<Option<LayoutView>, AdminError>;
    async fn drain(&self, node: u64) -> Result<NodeView, AdminError>;
    async fn remove(&self, node: u64) -> Result<(), AdminError>;
}

/// The shared handle the router holds.
pub type SharedClusterAdmin = Arc<dyn ClusterAdmin>;

/// Routes of `/_cluster/`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/_cluster/health", get(health))
        .route("/_cluster/state", get(state))
        .route("/_cluster/nodes", get(nodes))
        .route("/_cluster/nodes/{id}", get(node).delete(remove))
        .route("/_cluster/nodes/{id}/drain", post(drain))
        .route("/_cluster/layout", get(layout))
        .route("/_cluster/model", get(model_version::get))
        .route("/_cluster/model/probe", post(model_version::probe))
        .route("/_cluster/tasks", get(tasks::list).post(tasks::create))
        .route("/_cluster/tasks/{id}", get(tasks::get))
        .route("/_cluster/tasks/{id}/cancel", post(tasks::cancel))
}

/// An error response of this API.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(ErrorBody { code: self.code, message: &self.message });
        let mut response = (self.status, body).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"flotilla\""));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
    }
}

impl From<AdminError> for ApiError {
    fn from(error: AdminError) -> Self {
        let message = error.to_string();
        match error {
            AdminError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", message),
            AdminError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "CONFLICT", message),
            AdminError::Unavailable(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", message),
            AdminError::Internal(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", message),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        let code = match error.kind {
            ErrorKind::NotFound => "NOT_FOUND",
            ErrorKind::AlreadyExists | ErrorKind::Conflict => "CONFLICT",
            ErrorKind::InvalidArgument => "INVALID",
            ErrorKind::PreconditionFailed => "PRECONDITION_FAILED",
            ErrorKind::Forbidden => "DENIED",
            ErrorKind::Unavailable => "UNAVAILABLE",
            ErrorKind::Timeout => "TIMEOUT",
            ErrorKind::Internal => "INTERNAL",
        };
        ApiError::new(error.status(), code, error.message)
    }
}

macro_rules! api_error_from_service_error {
    ($($error:ty),*) => {$(
        impl From<$error> for ApiError {
            fn from(error: $error) -> Self {
                ServiceError::from(error).into()
            }
        }
    )*};
}
api_error_from_service_error!(flotilla_raft::MetaError, flotilla_raft::WriteError, flotilla_model::StoreError);

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// Only administrators may use this API.
pub(crate) async fn require_admin(state: &AppState, headers: &HeaderMap) -> ApiResult<()> {
    match state.auth.authenticate(headers).await {
        Ok(Some(principal)) if principal.admin => Ok(()),
        Ok(Some(principal)) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "DENIED",
            format!("user {} is not an administrator", principal.name),
        )),
        Ok(None) => Err(ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "authentication required")),
        Err(error) => Err(ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", error.to_string())),
    }
}

fn parse_node_id(text: &str) -> ApiResult<u64> {
    text.parse::<u64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "INVALID", format!("{text:?} is not a node id")))
}

async fn health(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    require_admin(&state, &headers).await?;
    let health = state.cluster.health().await;
    let status = if health.status == "red" { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    Ok((status, Json(health)).into_response())
}

async fn state(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Json<ClusterState>> {
    require_admin(&state, &headers).await?;
    Ok(Json(state.cluster.state().await?))
}

async fn nodes(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Vec<NodeView>>> {
    require_admin(&state, &headers).await?;
    Ok(Json(state.cluster.state().await?.nodes))
}

async fn node(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Json<NodeView>> {
    require_admin(&state, &headers).await?;
    let id = parse_node_id(&id)?;
    let nodes = state.cluster.state().await?.nodes;
    let node = nodes.into_iter().find(|node| node.id == id);
    node.map(Json).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", format!("no node {id}")))
}

async fn drain(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Response> {
    require_admin(&state, &headers).await?;
    let node = state.cluster.drain(parse_node_id(&id)?).await?;
    Ok((StatusCode::ACCEPTED, Json(node)).into_response())
}

async fn remove(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<StatusCode> {
    require_admin(&state, &headers).await?;
    state.cluster.remove(parse_node_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn layout(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Json<LayoutView>> {
    require_admin(&state, &headers).await?;
    let layout = state.cluster.layout().await?;
    layout.map(Json).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no layout yet"))
}
