//! `GET /artifactory/api/tasks`: background tasks scheduled or running, in
//! Artifactory's shape (`id`, `type`, `state`, `started` for running tasks,
//! `description`).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde::Serialize;

use flotilla_model::tasks::{TaskKind, TaskRecord, TaskState};

use super::{require_admin, ArtifactoryError};
use crate::auth::time::rfc3339;
use crate::state::AppState;
use crate::tasks;

#[derive(Debug, Serialize)]
pub struct TaskList {
    pub tasks: Vec<ArtifactoryTask>,
}

#[derive(Debug, Serialize)]
pub struct ArtifactoryTask {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    pub description: String,
}

/// Artifactory's job class and description for a task kind.
fn job_of(kind: TaskKind) -> (&'static str, &'static str) {
    match kind {
        TaskKind::Gc => {
            ("org.artifactory.storage.binstore.service.BinaryStoreGarbageCollectorJob", "Binaries Garbage Collector")
        }
        TaskKind::Optimize => ("org.artifactory.storage.binstore.service.OptimizeStorageJob", "Storage Optimization"),
        TaskKind::Repair => ("org.flotilla.storage.RepairJob", "Replica Repair"),
        TaskKind::Scrub => ("org.flotilla.storage.ScrubJob", "Storage Scrub"),
    }
}

fn artifactory_task(task: &TaskRecord) -> ArtifactoryTask {
    let (job, description) = job_of(task.kind);
    let short = job.rsplit('.').next().unwrap_or(job);
    ArtifactoryTask {
        id: format!("artifactory.{short}#{}", task.id),
        kind: job.to_owned(),
        state: task.state.name().to_owned(),
        started: (task.state == TaskState::Running).then(|| task.started_ms.map(|ms| rfc3339(ms / 1000))).flatten(),
        description: description.to_owned(),
    }
}

pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<TaskList>, ArtifactoryError> {
    require_admin(&state, &headers).await?;
    let tasks = tasks::list(&state).await?;
    let active = tasks.iter().filter(|task| !task.state.is_terminal()).map(artifactory_task).collect();
    Ok(Json(TaskList { tasks: active }))
}
