//! Cluster tasks as every surface sees them: create, list, look up, cancel.
//!
//! A task is only recorded here; the leader's task runner (node crate) picks
//! it up and does the work. The surfaces (`/_cluster/tasks`, the Artifactory
//! storage and task endpoints) render these results in their own formats.

use flotilla_raft::client::now_ms;
use flotilla_raft::command::{Command, RejectionKind, Response};
use flotilla_raft::task::{TaskKind, TaskOptions, TaskRecord, Trigger};
use flotilla_raft::MetaError;

use crate::state::AppState;

/// Why a task operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TaskError {
    #[error("{0}")]
    NotFound(String),
    /// Another task of the kind is active, or the task already ended.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error("{0}")]
    Internal(String),
}

impl From<flotilla_raft::state_machine::StoreError> for TaskError {
    fn from(error: flotilla_raft::state_machine::StoreError) -> Self {
        TaskError::Internal(error.to_string())
    }
}

/// Records a new task of `kind`; it starts as soon as the leader picks it up.
pub async fn create(state: &AppState, kind: TaskKind, options: TaskOptions) -> Result<TaskRecord, TaskError> {
    let id = uuid::Uuid::new_v4().to_string();
    let task = TaskRecord::new(id.clone(), kind, Trigger::Operator, options, now_ms());
    match state.meta.write(Command::CreateTask(Box::new(task))).await? {
        Response::Ok => get(state, &id).await,
        Response::Rejected(rejection) => Err(rejection_error(rejection.kind, rejection.message)),
    }
}

/// The active task of `kind`, if one is scheduled or running.
pub async fn active(state: &AppState, kind: TaskKind) -> Result<Option<TaskRecord>, TaskError> {
    Ok(list(state).await?.into_iter().find(|task| task.kind == kind && !task.state.is_terminal()))
}

/// Every task kept, newest first.
pub async fn list(state: &AppState) -> Result<Vec<TaskRecord>, TaskError> {
    Ok(state.catalog().await?.tasks()?)
}

/// One task.
pub async fn get(state: &AppState, id: &str) -> Result<TaskRecord, TaskError> {
    state.catalog().await?.task(id)?.ok_or_else(|| TaskError::NotFound(format!("task {id} does not exist")))
}

/// Cancels a scheduled or running task; the runner stops at its next step.
pub async fn cancel(state: &AppState, id: &str) -> Result<TaskRecord, TaskError> {
    match state.meta.write(Command::CancelTask { id: id.to_owned() }).await? {
        Response::Ok => get(state, id).await,
        Response::Rejected(rejection) => Err(rejection_error(rejection.kind, rejection.message)),
    }
}

fn rejection_error(kind: RejectionKind, message: String) -> TaskError {
    match kind {
        RejectionKind::TaskUnknown => TaskError::NotFound(message),
        RejectionKind::TaskConflict => TaskError::Conflict(message),
        _ => TaskError::Internal(message),
    }
}
