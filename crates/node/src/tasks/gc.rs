//! The garbage-collection task, run by the leader.
//!
//! It pages through the blob records in digest order. Blobs that no manifest
//! references and that have been unreferenced for the grace period are listed
//! in one `CollectBlobs` command per page; `apply` checks each again (a push
//! since the page was read keeps its blob) and leaves a tombstone for what it
//! forgets, from which every node's reclaimer deletes its copy. A dry run only
//! counts. After each page the task's cursor and counters are committed, so a
//! new leader resumes where the old one stopped, and a cancellation is seen
//! before the next page.
//!
//! Pushes and pulls never wait for any of this: a page costs one read of the
//! local replica and one Raft entry of at most `MAX_COLLECT_BATCH` digests.

use std::time::Duration;

use flotilla_raft::client::now_ms;
use flotilla_raft::state_machine::model::MAX_COLLECT_BATCH;
use flotilla_raft::task::{TaskCounters, TaskRecord, TaskState, TaskUpdate};
use flotilla_raft::{Command, MetaClient, MetaError, Response};
use flotilla_storage::Digest;

use super::TaskSettings;

/// Blob records read per page (and at most collected per command).
const PAGE: usize = MAX_COLLECT_BATCH;
/// Pause before retrying a write while no leader answers.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Runs (or resumes) a GC task to its end; returns the state it ended in.
pub async fn run(meta: &MetaClient, task: TaskRecord, settings: &TaskSettings) -> Result<TaskState, String> {
    let id = task.id.clone();
    let grace_ms = task.options.grace_ms.unwrap_or(settings.gc_grace.as_millis() as u64);
    let started = TaskUpdate { node: Some(meta.node_id()), ..TaskUpdate::state(&id, TaskState::Running) };
    if !update(meta, started).await? {
        return Ok(current_state(meta, &id));
    }
    let mut cursor = match task.cursor.as_deref().map(Digest::parse) {
        Some(Ok(digest)) => Some(digest),
        Some(Err(error)) => return Err(format!("bad cursor in task {id}: {error}")),
        None => None,
    };
    loop {
        let cutoff = now_ms().saturating_sub(grace_ms);
        let page = meta.local().blobs(cursor.as_ref(), PAGE).map_err(|error| error.to_string())?;
        let Some((last, _)) = page.last() else { break };
        let next = last.clone();
        let collectable: Vec<(Digest, u64)> = page
            .iter()
            .filter(|(_, record)| record.refcount == 0 && record.unreferenced_since_ms.is_some_and(|t| t <= cutoff))
            .map(|(digest, record)| (digest.clone(), record.size))
            .collect();
        let mut progress = TaskCounters { scanned: page.len() as u64, ..TaskCounters::default() };
        if task.options.dry_run {
            progress.blobs = collectable.len() as u64;
            progress.bytes = collectable.iter().map(|(_, size)| size).sum();
        } else if !collectable.is_empty() {
            let digests = collectable.into_iter().map(|(digest, _)| digest).collect();
            let collect = Command::CollectBlobs { task: Some(id.clone()), digests, unreferenced_before_ms: cutoff };
            if !write(meta, collect).await? {
                return Ok(current_state(meta, &id));
            }
        }
        let step = TaskUpdate {
            id: id.clone(),
            state: None,
            node: None,
            counters: progress,
            error: None,
            cursor: Some(next.to_string()),
        };
        if !update(meta, step).await? {
            return Ok(current_state(meta, &id));
        }
        if page.len() < PAGE {
            break;
        }
        cursor = Some(next);
    }
    if !update(meta, TaskUpdate::state(&id, TaskState::Finished)).await? {
        return Ok(current_state(meta, &id));
    }
    Ok(TaskState::Finished)
}

/// Commits a task update; `false` if the task ended meanwhile (cancelled).
async fn update(meta: &MetaClient, update: TaskUpdate) -> Result<bool, String> {
    write(meta, Command::UpdateTask(update)).await
}

/// Commits `command`, retrying while no leader answers; `false` if it was
/// refused because the task ended (the only refusal a GC step can meet).
async fn write(meta: &MetaClient, command: Command) -> Result<bool, String> {
    loop {
        match meta.write(command.clone()).await {
            Ok(Response::Ok) => return Ok(true),
            Ok(Response::Rejected(rejection)) => {
                tracing::info!(reason = %rejection.message, "gc step refused; stopping");
                return Ok(false);
            }
            Err(MetaError::Unavailable(message)) => {
                tracing::debug!(%message, "gc step waits for a leader");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Err(MetaError::Fatal(message)) => return Err(message),
        }
    }
}

fn current_state(meta: &MetaClient, id: &str) -> TaskState {
    meta.local().task(id).ok().flatten().map_or(TaskState::Cancelled, |task| task.state)
}
