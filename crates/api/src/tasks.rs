//! Cluster tasks as every surface sees them: create, list, look up, cancel.
//!
//! A task is only recorded here; the leader's task runner (node crate) picks
//! it up and does the work. The surfaces (`/_cluster/tasks`, the Artifactory
//! storage and task endpoints) render these results in their own formats.

use flotilla_model::tasks::{self, TaskKind, TaskOptions, TaskRecord, Trigger};
use flotilla_raft::client::now_ms;

use crate::error::ServiceError;
use crate::state::AppState;

/// Records a new task of `kind`; it starts as soon as the leader picks it up.
/// A task of the kind already active is a conflict (`TASK_CONFLICT`).
pub async fn create(state: &AppState, kind: TaskKind, options: TaskOptions) -> Result<TaskRecord, ServiceError> {
    let id = uuid::Uuid::new_v4().to_string();
    let task = TaskRecord::new(id.clone(), kind, Trigger::Operator, options, now_ms());
    state.meta.write(tasks::Command::CreateTask(Box::new(task))).await?;
    get(state, &id).await
}

/// The active task of `kind`, if one is scheduled or running.
pub async fn active(state: &AppState, kind: TaskKind) -> Result<Option<TaskRecord>, ServiceError> {
    Ok(list(state).await?.into_iter().find(|task| task.kind == kind && !task.state.is_terminal()))
}

/// Every task kept, newest first.
pub async fn list(state: &AppState) -> Result<Vec<TaskRecord>, ServiceError> {
    Ok(state.catalog().await?.tasks().tasks()?)
}

/// One task.
pub async fn get(state: &AppState, id: &str) -> Result<TaskRecord, ServiceError> {
    let task = state.catalog().await?.tasks().task(id)?;
    task.ok_or_else(|| ServiceError::not_found(tasks::code::TASK_UNKNOWN, format!("task {id} does not exist")))
}

/// Cancels a scheduled or running task; the runner stops at its next step.
pub async fn cancel(state: &AppState, id: &str) -> Result<TaskRecord, ServiceError> {
    state.meta.write(tasks::Command::CancelTask { id: id.to_owned() }).await?;
    get(state, id).await
}
