//! The garbage-collection task, run by the leader.
//!
//! It pages through the index of unreferenced blobs, oldest first, up to the
//! grace period's cutoff — its cost follows the garbage, not the number of
//! blobs. The blobs held by nothing for the grace period are listed in one
//! `CollectBlobs` command per page; `apply` checks each again (a push
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

use flotilla_model::blobs::BackfillCursor;
use flotilla_model::blobs::MAX_COLLECT_BATCH;
use flotilla_model::tasks::{TaskCounters, TaskRecord, TaskState, TaskUpdate};
use flotilla_model::{blobs, oci, tasks, Outcome};
use flotilla_raft::client::now_ms;
use flotilla_raft::{MetaClient, WriteError};
use flotilla_storage::Digest;

use super::{commit, current_state, TaskSettings, RETRY_PAUSE};

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
    backfill(meta).await?;
    // A cursor of an older release (a bare digest) starts the walk over: collecting is idempotent.
    let mut cursor = task.cursor.as_deref().and_then(parse_cursor);
    loop {
        let cutoff = now_ms().saturating_sub(grace_ms);
        let after = cursor.as_ref().map(|(since, digest)| (*since, digest));
        let page = meta.local().blobs().unreferenced(cutoff, after, PAGE).map_err(|error| error.to_string())?;
        let Some(last) = page.last().cloned() else { break };
        let collectable = sizes(meta, &page)?;
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
        if !update(meta, TaskUpdate::progress(&id, progress, Some(render_cursor(&last)))).await? {
            return Ok(current_state(meta, &id));
        }
        if page.len() < PAGE {
            break;
        }
        cursor = Some(last);
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

/// Completes, in batches, what a state written by 0.1.0 lacks (the index of
/// unreferenced blobs this task reads, and the holder rows); at once when
/// the state is complete already.
async fn backfill(meta: &MetaClient) -> Result<(), String> {
    if meta.local().blobs().gc_state().map_err(|error| error.to_string())?.indexed {
        return Ok(());
    }
    let mut from = BackfillCursor::start();
    loop {
        match meta.write(blobs::Command::Backfill { from: from.clone() }).await {
            Ok(Outcome::Blobs(blobs::Outcome::Backfilled { next: Some(next) })) => from = next,
            Ok(_) => {
                tracing::info!("blob holder rows and the unreferenced index are complete");
                return Ok(());
            }
            Err(WriteError::Unavailable(message)) => {
                tracing::debug!(%message, "the backfill waits for a leader");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Err(error) => return Err(error.to_string()),
        }
    }
}

/// The blobs of `page` that still have a record, with their sizes (one snapshot).
fn sizes(meta: &MetaClient, page: &[(u64, Digest)]) -> Result<Vec<(Digest, u64)>, String> {
    let reader = meta.local().blobs();
    let mut sizes = Vec::with_capacity(page.len());
    for (_, digest) in page {
        if let Some(record) = reader.blob(digest).map_err(|error| error.to_string())? {
            sizes.push((digest.clone(), record.size));
        }
    }
    Ok(sizes)
}

/// `<unreferenced since ms>:<digest>`: where in the unreferenced index the task got to.
fn render_cursor((since, digest): &(u64, Digest)) -> String {
    format!("{since}:{digest}")
}

fn parse_cursor(text: &str) -> Option<(u64, Digest)> {
    let (since, digest) = text.split_once(':')?;
    Some((since.parse().ok()?, Digest::parse(digest).ok()?))
}

/// Commits a task update; `false` if the task ended meanwhile (cancelled).
async fn update(meta: &MetaClient, update: TaskUpdate) -> Result<bool, String> {
    commit(meta, tasks::Command::UpdateTask(update)).await
}
