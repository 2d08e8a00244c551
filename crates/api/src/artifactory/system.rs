//! `POST /artifactory/api/system/storage/gc`.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use flotilla_raft::task::{TaskKind, TaskOptions};

use super::{require_admin, ArtifactoryError};
use crate::state::AppState;
use crate::tasks::{self, TaskError};

/// Starts garbage collection with the cluster's grace period. Like Artifactory it
/// answers 200 with a line of text, also when a collection is already under way
/// (that one is reported instead of starting another).
pub async fn run_gc(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ArtifactoryError> {
    require_admin(&state, &headers).await?;
    let message = match tasks::create(&state, TaskKind::Gc, TaskOptions::default()).await {
        Ok(task) => format!("Garbage collection started (task {}).", task.id),
        Err(TaskError::Conflict(_)) => match tasks::active(&state, TaskKind::Gc).await? {
            Some(task) => format!("Garbage collection is already {} (task {}).", task.state.name(), task.id),
            None => "Garbage collection just finished.".to_owned(),
        },
        Err(error) => return Err(error.into()),
    };
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], message + "\n").into_response())
}
