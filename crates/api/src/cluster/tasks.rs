//! `/_cluster/tasks`: create, list, look at and cancel cluster tasks.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /_cluster/tasks` | every task kept, newest first |
//! | `POST /_cluster/tasks` | `{"kind": "gc", "dry_run": false, "grace_seconds": 3600, "untagged": false}` (kinds `gc`, `repair`, `scrub`, `optimize`) → 202 and the task; 409 while one of the kind is active |
//! | `GET /_cluster/tasks/{id}` | one task |
//! | `POST /_cluster/tasks/{id}/cancel` | cancel it; 409 once it ended |

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use flotilla_model::tasks::{TaskKind, TaskOptions, TaskRecord, Trigger};

use super::model::{TaskList, TaskView};
use super::{require_admin, ApiError, ApiResult};
use crate::auth::time::rfc3339;
use crate::state::AppState;
use crate::tasks;

/// The longest grace period a request may ask for (a year), so that it fits any clock arithmetic.
const MAX_GRACE_SECONDS: u64 = 366 * 24 * 3600;

/// The body of `POST /_cluster/tasks`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTask {
    kind: String,
    #[serde(default)]
    dry_run: bool,
    grace_seconds: Option<u64>,
    #[serde(default)]
    untagged: bool,
}

/// The view of a task record.
pub fn view(task: &TaskRecord) -> TaskView {
    let time = |ms: u64| rfc3339(ms / 1000);
    TaskView {
        id: task.id.clone(),
        kind: task.kind.name().to_owned(),
        state: task.state.name().to_owned(),
        trigger: match task.trigger {
            Trigger::Operator => "operator".to_owned(),
            Trigger::Schedule => "schedule".to_owned(),
        },
        dry_run: task.options.dry_run,
        grace_seconds: task.options.grace_ms.map(|ms| ms / 1000),
        untagged: task.options.untagged,
        scanned: task.counters.scanned,
        blobs: task.counters.blobs,
        bytes: task.counters.bytes,
        failed: task.counters.failed,
        manifests: task.counters.manifests,
        node: task.node,
        created: time(task.created_ms),
        started: task.started_ms.map(time),
        ended: task.ended_ms.map(time),
        error: task.error.clone(),
    }
}

pub(super) async fn list(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Json<TaskList>> {
    require_admin(&state, &headers).await?;
    let tasks = tasks::list(&state).await?;
    Ok(Json(TaskList { tasks: tasks.iter().map(view).collect() }))
}

pub(super) async fn create(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult<Response> {
    require_admin(&state, &headers).await?;
    let invalid = |message: String| ApiError::new(StatusCode::BAD_REQUEST, "INVALID", message);
    let request: CreateTask =
        serde_json::from_slice(&body).map_err(|error| invalid(format!("malformed task request: {error}")))?;
    let kind =
        TaskKind::parse(&request.kind).ok_or_else(|| invalid(format!("unknown task kind {:?}", request.kind)))?;
    if (request.grace_seconds.is_some() || request.untagged) && kind != TaskKind::Gc {
        return Err(invalid(format!("grace_seconds and untagged apply to gc only, not to {}", kind.name())));
    }
    if request.grace_seconds.is_some_and(|grace| grace > MAX_GRACE_SECONDS) {
        return Err(invalid(format!("grace_seconds must be at most {MAX_GRACE_SECONDS}")));
    }
    let options = TaskOptions {
        dry_run: request.dry_run,
        grace_ms: request.grace_seconds.map(|s| s * 1000),
        untagged: request.untagged,
    };
    let task = tasks::create(&state, kind, options).await?;
    Ok((StatusCode::ACCEPTED, Json(view(&task))).into_response())
}

pub(super) async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<TaskView>> {
    require_admin(&state, &headers).await?;
    Ok(Json(view(&tasks::get(&state, &id).await?)))
}

pub(super) async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<TaskView>> {
    require_admin(&state, &headers).await?;
    Ok(Json(view(&tasks::cancel(&state, &id).await?)))
}
