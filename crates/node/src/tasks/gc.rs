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
//! With the opt-in untagged policy (`TaskOptions::untagged`), manifests that
//! no tag, no index and no live subject keeps, and that are older than the
//! grace period, are deleted first, so that the blobs only they referenced are
//! collected by the same run (with a grace period of zero) or the next one.
//!
//! Pushes and pulls never wait for any of this: a page costs one read of the
//! local replica and one Raft entry of at most `MAX_COLLECT_BATCH` digests.

use flotilla_model::blobs::MAX_COLLECT_BATCH;
use flotilla_model::tasks::{TaskCounters, TaskRecord, TaskState, TaskUpdate};
use flotilla_model::{blobs, oci, tasks};
use flotilla_raft::client::now_ms;
use flotilla_raft::MetaClient;
use flotilla_storage::Digest;

use super::{commit, current_state, TaskSettings};

/// Blob records read per page (and at most collected per command).
const PAGE: usize = MAX_COLLECT_BATCH;

/// Runs (or resumes) a GC task to its end; returns the state it ended in.
pub async fn run(meta: &MetaClient, task: TaskRecord, settings: &TaskSettings) -> Result<TaskState, String> {
    let id = task.id.clone();
    let grace_ms = task.options.grace_ms.unwrap_or(settings.gc_grace.as_millis() as u64);
    let started = TaskUpdate { node: Some(meta.node_id()), ..TaskUpdate::state(&id, TaskState::Running) };
    if !update(meta, started).await? {
        return Ok(current_state(meta, &id));
    }
    if task.options.untagged && task.cursor.is_none() {
        let created_before_ms = now_ms().saturating_sub(grace_ms);
        if !prune_untagged(meta, &task, created_before_ms).await? {
            return Ok(current_state(meta, &id));
        }
    }
    let mut cursor = match task.cursor.as_deref().map(Digest::parse) {
        Some(Ok(digest)) => Some(digest),
        Some(Err(error)) => return Err(format!("bad cursor in task {id}: {error}")),
        None => None,
    };
    loop {
        let cutoff = now_ms().saturating_sub(grace_ms);
        let page = meta.local().blobs().blobs(cursor.as_ref(), PAGE).map_err(|error| error.to_string())?;
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
            let collect =
                blobs::Command::CollectBlobs { task: Some(id.clone()), digests, unreferenced_before_ms: cutoff };
            if !commit(meta, collect).await? {
                return Ok(current_state(meta, &id));
            }
        }
        if !update(meta, TaskUpdate::progress(&id, progress, Some(next.to_string()))).await? {
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

/// The untagged policy: deletes, repository by repository, the manifests
/// nothing keeps (see `Catalog::prunable_manifests`), again until a pass
/// finds none, since deleting an index frees its children. A dry run counts
/// the first pass. Runs before any blob is collected (no cursor yet), so the
/// blobs it unreferences are judged by the same run; after a failover it
/// simply runs again. `false` if the task ended meanwhile.
async fn prune_untagged(meta: &MetaClient, task: &TaskRecord, created_before_ms: u64) -> Result<bool, String> {
    let local = |error: flotilla_model::StoreError| error.to_string();
    let mut last_repo: Option<String> = None;
    loop {
        let repos = meta.local().oci().repositories(last_repo.as_deref(), PAGE).map_err(local)?;
        for repo in &repos {
            let mut previous = Vec::new();
            loop {
                let prunable = meta.local().oci().prunable_manifests(repo, created_before_ms).map_err(local)?;
                if prunable.is_empty() || prunable == previous {
                    break;
                }
                if task.options.dry_run {
                    let counted = TaskCounters { manifests: prunable.len() as u64, ..TaskCounters::default() };
                    if !update(meta, TaskUpdate::progress(&task.id, counted, None)).await? {
                        return Ok(false);
                    }
                    break;
                }
                for chunk in prunable.chunks(MAX_COLLECT_BATCH) {
                    let prune = oci::Command::PruneManifests {
                        task: Some(task.id.clone()),
                        repo: repo.clone(),
                        digests: chunk.to_vec(),
                        created_before_ms,
                    };
                    if !commit(meta, prune).await? {
                        return Ok(false);
                    }
                }
                previous = prunable;
            }
        }
        if repos.len() < PAGE {
            return Ok(true);
        }
        last_repo = repos.last().cloned();
    }
}

/// Commits a task update; `false` if the task ended meanwhile (cancelled).
async fn update(meta: &MetaClient, update: TaskUpdate) -> Result<bool, String> {
    commit(meta, tasks::Command::UpdateTask(update)).await
}
