//! `POST /artifactory/api/system/storage/gc` and `POST /artifactory/api/system/storage/optimize`.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use flotilla_model::tasks::{TaskKind, TaskOptions};
use flotilla_model::ErrorKind;

use super::{require_admin, ArtifactoryError};
use crate::state::AppState;
use crate::tasks;

/// Starts garbage collection with the cluster's grace period. Like Artifactory it
/// answers 200 with a line of text, also when a collection is already under way
/// (that one is reported instead of starting another).
pub async fn run_gc(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ArtifactoryError> {
    start(&state, &headers, TaskKind::Gc, "Garbage collection").await
}

/// Starts storage optimization: once the layout is synced, the copies no owner
/// list names any more are dropped (Artifactory's sharded-filestore rebalance).
/// 200 with a line of text, as Artifactory answers.
pub async fn optimize(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ArtifactoryError> {
    start(&state, &headers, TaskKind::Optimize, "Storage optimization").await
}

async fn start(
    state: &AppState,
    headers: &HeaderMap,
    kind: TaskKind,
    what: &str,
) -> Result<Response, ArtifactoryError> {
    require_admin(state, headers).await?;
    let message = match tasks::create(state, kind, TaskOptions::default()).await {
        Ok(task) => format!("{what} started (task {}).", task.id),
        Err(error) if error.kind == ErrorKind::Conflict => match tasks::active(state, kind).await? {
            Some(task) => format!("{what} is already {} (task {}).", task.state.name(), task.id),
            None => format!("{what} just finished."),
        },
        Err(error) => return Err(error.into()),
    };
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], message + "\n").into_response())
}
