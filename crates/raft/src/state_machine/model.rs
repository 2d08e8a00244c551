//! The pure `apply`: one request in, one response out, all effects in the
//! store's write set. No clock reads, no randomness, no I/O beyond the store —
//! every replica computes the same state from the same log.
//!
//! Preconditions that depend on state are checked here, before any write, so
//! a rejected command changes nothing:
//! - a manifest's blobs must be linked in its repository, its index entries
//!   must be manifests of its repository;
//! - a blob recorded twice must have the same size;
//! - deletes name something that exists;
//! - a removed node stays removed; layouts advance one version at a time;
//! - garbage collection only forgets blobs that are still unreferenced, and an
//!   upload that began before a blob was collected cannot record it again;
//! - one task of a kind is active at a time, and ended tasks never change.

use std::collections::HashSet;

use serde::de::DeserializeOwned;
use serde::Serialize;

use flotilla_storage::Digest;

use super::keys;
use super::records::{
    AppliedRequest, BlobRecord, GcState, LinkRecord, ManifestContent, ManifestRecord, RepoRecord, TagRecord, Tombstone,
};
use super::{StateRead, StateWrite, StoreError};
use crate::cluster::{Layout, NodeRecord, NodeState};
use crate::command::{ClusterSettings, Command, PutManifest, Rejection, RejectionKind, Request, Response, UserRecord};
use crate::task::{TaskCounters, TaskRecord, TaskState, TaskUpdate, TASKS_KEPT};
use crate::types::NodeId;

/// How long a request id is remembered for deduplicating retries (ms).
/// Far longer than any client retry through an election.
pub const REQUEST_ID_RETENTION_MS: u64 = 15 * 60 * 1000;
/// At most this many expired request ids are dropped per apply, bounding its cost.
const REQUEST_ID_EXPIRY_BATCH: usize = 32;
/// Page size for scans inside apply.
const SCAN_PAGE: usize = 512;
/// How long tombstones of collected blobs are kept (ms): far longer than any
/// upload takes from writing its bytes to recording the blob, and long enough
/// for a node that was down to come back and delete its copies.
pub const TOMBSTONE_RETENTION_MS: u64 = 24 * 60 * 60 * 1000;
/// At most this many expired tombstones are dropped per collection.
const TOMBSTONE_EXPIRY_BATCH: usize = 1024;
/// At most this many blobs per `CollectBlobs`, bounding the cost of one apply.
pub const MAX_COLLECT_BATCH: usize = 1000;

/// Applies one request. A repeated request id returns the first response and changes nothing.
pub fn apply(store: &mut impl StateWrite, request: &Request) -> Result<Response, StoreError> {
    let request_key = keys::request(request.request_id);
    if let Some(applied) = get_json::<AppliedRequest>(store, &request_key)? {
        return Ok(applied.response);
    }
    expire_request_ids(store, request.time_ms)?;
    let response = match execute(store, request) {
        Ok(()) => Response::Ok,
        Err(Refusal::Rejected(rejection)) => Response::Rejected(rejection),
        Err(Refusal::Store(error)) => return Err(error),
    };
    let applied = AppliedRequest { time_ms: request.time_ms, response: response.clone() };
    put_json(store, request_key, &applied);
    store.put(keys::request_time(request.time_ms, request.request_id), Vec::new());
    Ok(response)
}

/// Why a command did not apply.
enum Refusal {
    Rejected(Rejection),
    Store(StoreError),
}

impl From<StoreError> for Refusal {
    fn from(error: StoreError) -> Self {
        Refusal::Store(error)
    }
}

fn reject(kind: RejectionKind, message: impl Into<String>, digest: Option<&Digest>) -> Refusal {
    Refusal::Rejected(Rejection { kind, message: message.into(), digest: digest.cloned() })
}

fn execute(store: &mut impl StateWrite, request: &Request) -> Result<(), Refusal> {
    let now = request.time_ms;
    match &request.command {
        Command::PutSettings(settings) => put_settings(store, settings),
        Command::PutUser(user) => put_user(store, user),
        Command::DeleteUser { name } => delete_user(store, name),
        Command::PutBlob { repo, digest, size, gc_epoch } => put_blob(store, repo, digest, *size, *gc_epoch, now),
        Command::MountBlob { from, repo, digest } => mount_blob(store, from, repo, digest, now),
        Command::UnlinkBlob { repo, digest } => unlink_blob(store, repo, digest),
        Command::PutManifest(manifest) => put_manifest(store, manifest, now),
        Command::DeleteManifest { repo, digest } => delete_manifest(store, repo, digest, now),
        Command::DeleteTag { repo, tag } => delete_tag(store, repo, tag),
        Command::PutNode(node) => put_node(store, node),
        Command::SetNodeState { id, state } => set_node_state(store, *id, *state),
        Command::PutLayout(layout) => put_layout(store, layout),
        Command::MarkLayoutSynced { version } => mark_layout_synced(store, *version),
        Command::CreateTask(task) => create_task(store, task),
        Command::UpdateTask(update) => update_task(store, update, now),
        Command::CancelTask { id } => cancel_task(store, id, now),
        Command::CollectBlobs { task, digests, unreferenced_before_ms } => {
            collect_blobs(store, task.as_deref(), digests, *unreferenced_before_ms, now)
        }
        Command::PruneManifests { task, repo, digests, created_before_ms } => {
            prune_manifests(store, task.as_deref(), repo, digests, *created_before_ms, now)
        }
    }
}

fn put_node(store: &mut impl StateWrite, node: &NodeRecord) -> Result<(), Refusal> {
    let key = keys::node(node.id);
    if let Some(existing) = get_json::<NodeRecord>(store, &key)? {
        if existing.state == NodeState::Removed {
            return Err(reject(RejectionKind::NodeRemoved, format!("node {} was removed", node.id), None));
        }
    }
    put_json(store, key, node);
    Ok(())
}

fn set_node_state(store: &mut impl StateWrite, id: NodeId, state: NodeState) -> Result<(), Refusal> {
    let key = keys::node(id);
    let Some(mut node) = get_json::<NodeRecord>(store, &key)? else {
        return Err(reject(RejectionKind::NodeUnknown, format!("node {id} is not in the cluster"), None));
    };
    if node.state == NodeState::Removed && state != NodeState::Removed {
        return Err(reject(RejectionKind::NodeRemoved, format!("node {id} was removed"), None));
    }
    node.state = state;
    put_json(store, key, &node);
    Ok(())
}

fn put_layout(store: &mut impl StateWrite, layout: &Layout) -> Result<(), Refusal> {
    if !layout.is_well_formed() {
        return Err(reject(RejectionKind::Invalid, "malformed layout", None));
    }
    let current = get_json::<Layout>(store, &keys::layout())?.map_or(0, |current| current.version);
    if layout.version != current + 1 {
        let message = format!("layout version {} does not follow {current}", layout.version);
        return Err(reject(RejectionKind::Invalid, message, None));
    }
    put_json(store, keys::layout(), layout);
    Ok(())
}

fn mark_layout_synced(store: &mut impl StateWrite, version: u64) -> Result<(), Refusal> {
    let Some(mut layout) = get_json::<Layout>(store, &keys::layout())? else {
        return Err(reject(RejectionKind::Invalid, "no layout", None));
    };
    if layout.version != version {
        let message = format!("layout {version} is not current (current: {})", layout.version);
        return Err(reject(RejectionKind::Invalid, message, None));
    }
    layout.previous = None;
    put_json(store, keys::layout(), &layout);
    Ok(())
}

fn put_settings(store: &mut impl StateWrite, settings: &ClusterSettings) -> Result<(), Refusal> {
    put_json(store, keys::settings(), settings);
    Ok(())
}

fn put_user(store: &mut impl StateWrite, user: &UserRecord) -> Result<(), Refusal> {
    put_json(store, keys::user(&user.name), user);
    Ok(())
}

fn delete_user(store: &mut impl StateWrite, name: &str) -> Result<(), Refusal> {
    let key = keys::user(name);
    if store.get(&key)?.is_none() {
        return Err(reject(RejectionKind::UserUnknown, format!("user {name} does not exist"), None));
    }
    store.delete(&key);
    Ok(())
}

fn put_blob(
    store: &mut impl StateWrite,
    repo: &str,
    digest: &Digest,
    size: u64,
    gc_epoch: u64,
    now: u64,
) -> Result<(), Refusal> {
    check_not_collected_since(store, digest, gc_epoch)?;
    let blob_key = keys::blob(digest);
    match get_json::<BlobRecord>(store, &blob_key)? {
        Some(existing) if existing.size != size => {
            return Err(reject(
                RejectionKind::Conflict,
                format!("blob recorded with size {}, not {size}", existing.size),
                Some(digest),
            ));
        }
        Some(mut existing) => {
            // Uploaded again: the grace period starts over, so a push in progress is not collected under it.
            if existing.refcount == 0 {
                existing.unreferenced_since_ms = Some(now);
                put_json(store, blob_key, &existing);
            }
        }
        None => {
            let record = BlobRecord { size, refcount: 0, created_ms: now, unreferenced_since_ms: Some(now) };
            put_json(store, blob_key, &record);
        }
    }
    link_blob(store, repo, digest, now)
}

/// Refuses a blob whose bytes were written before a collection of it that the writer had not seen.
fn check_not_collected_since(store: &impl StateRead, digest: &Digest, gc_epoch: u64) -> Result<(), Refusal> {
    let collected_after = match get_json::<Tombstone>(store, &keys::tombstone(digest))? {
        Some(tombstone) => tombstone.epoch > gc_epoch,
        // Expired tombstones can no longer be checked.
        None => gc_epoch < get_json::<GcState>(store, &keys::gc_state())?.unwrap_or_default().floor,
    };
    if collected_after {
        let message = "the blob was garbage-collected while it was uploaded; upload it again";
        return Err(reject(RejectionKind::BlobCollected, message, Some(digest)));
    }
    Ok(())
}

fn link_blob(store: &mut impl StateWrite, repo: &str, digest: &Digest, now: u64) -> Result<(), Refusal> {
    ensure_repo(store, repo, now)?;
    let link_key = keys::repo_blob(repo, digest);
    if store.get(&link_key)?.is_none() {
        put_json(store, link_key, &LinkRecord { linked_ms: now });
        store.put(keys::blob_link(digest, repo), Vec::new());
    }
    Ok(())
}

fn mount_blob(store: &mut impl StateWrite, from: &str, repo: &str, digest: &Digest, now: u64) -> Result<(), Refusal> {
    if store.get(&keys::repo_blob(from, digest))?.is_none() {
        return Err(reject(RejectionKind::BlobUnknown, format!("blob unknown to {from}"), Some(digest)));
    }
    let blob_key = keys::blob(digest);
    let Some(mut record) = get_json::<BlobRecord>(store, &blob_key)? else {
        return Err(reject(RejectionKind::BlobUnknown, "blob unknown to this registry", Some(digest)));
    };
    // A mount is a push of the blob: the grace period starts over.
    if record.refcount == 0 {
        record.unreferenced_since_ms = Some(now);
        put_json(store, blob_key, &record);
    }
    link_blob(store, repo, digest, now)
}

fn unlink_blob(store: &mut impl StateWrite, repo: &str, digest: &Digest) -> Result<(), Refusal> {
    let link_key = keys::repo_blob(repo, digest);
    if store.get(&link_key)?.is_none() {
        return Err(reject(RejectionKind::BlobUnknown, "blob unknown to repository", Some(digest)));
    }
    store.delete(&link_key);
    store.delete(&keys::blob_link(digest, repo));
    Ok(())
}

fn put_manifest(store: &mut impl StateWrite, manifest: &PutManifest, now: u64) -> Result<(), Refusal> {
    let repo = manifest.repo.as_str();
    check_manifest_references(store, manifest)?;
    let record_key = keys::repo_manifest(repo, &manifest.digest);
    if store.get(&record_key)?.is_none() {
        ensure_repo(store, repo, now)?;
        add_manifest_record(store, manifest, now)?;
    }
    if let Some(tag) = &manifest.tag {
        let record = TagRecord { digest: manifest.digest.clone(), updated_ms: now };
        put_json(store, keys::tag(repo, tag), &record);
    }
    Ok(())
}

fn check_manifest_references(store: &impl StateRead, manifest: &PutManifest) -> Result<(), Refusal> {
    for blob in &manifest.blobs {
        // The record is checked too: a link written before links were indexed by blob may outlive a collection.
        let linked = store.get(&keys::repo_blob(&manifest.repo, blob))?.is_some();
        if !linked || store.get(&keys::blob(blob))?.is_none() {
            let message = format!("blob {blob} is not in repository {}", manifest.repo);
            return Err(reject(RejectionKind::ManifestBlobUnknown, message, Some(blob)));
        }
    }
    for child in &manifest.manifests {
        if store.get(&keys::repo_manifest(&manifest.repo, child))?.is_none() {
            let message = format!("manifest {child} is not in repository {}", manifest.repo);
            return Err(reject(RejectionKind::ManifestBlobUnknown, message, Some(child)));
        }
    }
    Ok(())
}

fn add_manifest_record(store: &mut impl StateWrite, manifest: &PutManifest, now: u64) -> Result<(), Refusal> {
    for blob in &manifest.blobs {
        adjust_blob_refcount(store, blob, 1, now)?;
    }
    let content_key = keys::content(&manifest.digest);
    let content = match get_json::<ManifestContent>(store, &content_key)? {
        Some(mut existing) => {
            existing.refcount += 1;
            existing
        }
        None => {
            ManifestContent { media_type: manifest.media_type.clone(), content: manifest.content.clone(), refcount: 1 }
        }
    };
    put_json(store, content_key, &content);
    if let Some(subject) = &manifest.subject {
        store.put(keys::referrer(&manifest.repo, subject, &manifest.digest), Vec::new());
    }
    let record = ManifestRecord {
        media_type: manifest.media_type.clone(),
        size: manifest.content.len() as u64,
        created_ms: now,
        blobs: manifest.blobs.clone(),
        manifests: manifest.manifests.clone(),
        subject: manifest.subject.clone(),
        artifact_type: manifest.artifact_type.clone(),
        annotations: manifest.annotations.clone(),
    };
    put_json(store, keys::repo_manifest(&manifest.repo, &manifest.digest), &record);
    Ok(())
}

fn adjust_blob_refcount(store: &mut impl StateWrite, digest: &Digest, delta: i64, now: u64) -> Result<(), Refusal> {
    let key = keys::blob(digest);
    let Some(mut record) = get_json::<BlobRecord>(store, &key)? else {
        debug_assert!(delta < 0, "a referenced blob always has a record");
        return Ok(());
    };
    record.refcount = record.refcount.saturating_add_signed(delta);
    record.unreferenced_since_ms = match (record.refcount, record.unreferenced_since_ms) {
        (0, None) => Some(now),
        (0, since) => since,
        _ => None,
    };
    put_json(store, key, &record);
    Ok(())
}

fn delete_manifest(store: &mut impl StateWrite, repo: &str, digest: &Digest, now: u64) -> Result<(), Refusal> {
    let record_key = keys::repo_manifest(repo, digest);
    let Some(record) = get_json::<ManifestRecord>(store, &record_key)? else {
        return Err(reject(RejectionKind::ManifestUnknown, "manifest unknown to repository", Some(digest)));
    };
    for tag_key in tags_pointing_at(store, repo, digest)? {
        store.delete(&tag_key);
    }
    for blob in &record.blobs {
        adjust_blob_refcount(store, blob, -1, now)?;
    }
    let content_key = keys::content(digest);
    if let Some(mut content) = get_json::<ManifestContent>(store, &content_key)? {
        content.refcount = content.refcount.saturating_sub(1);
        if content.refcount == 0 {
            store.delete(&content_key);
        } else {
            put_json(store, content_key, &content);
        }
    }
    if let Some(subject) = &record.subject {
        store.delete(&keys::referrer(repo, subject, digest));
    }
    store.delete(&record_key);
    Ok(())
}

fn tags_pointing_at(store: &impl StateRead, repo: &str, digest: &Digest) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut matching = Vec::new();
    for_each_entry(store, &keys::tag_prefix(repo), |key, value| {
        if decode::<TagRecord>(value)?.digest == *digest {
            matching.push(key.to_vec());
        }
        Ok(())
    })?;
    Ok(matching)
}

/// Calls `visit` on every entry under `prefix`, in key order, a page at a time.
fn for_each_entry<S: StateRead + ?Sized>(
    store: &S,
    prefix: &[u8],
    mut visit: impl FnMut(&[u8], &[u8]) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = store.scan(prefix, after.as_deref(), SCAN_PAGE)?;
        let done = page.len() < SCAN_PAGE;
        for (key, value) in page {
            visit(&key, &value)?;
            after = Some(key);
        }
        if done {
            return Ok(());
        }
    }
}

fn delete_tag(store: &mut impl StateWrite, repo: &str, tag: &str) -> Result<(), Refusal> {
    let key = keys::tag(repo, tag);
    if store.get(&key)?.is_none() {
        return Err(reject(RejectionKind::ManifestUnknown, format!("tag {tag} unknown"), None));
    }
    store.delete(&key);
    Ok(())
}

fn create_task(store: &mut impl StateWrite, task: &TaskRecord) -> Result<(), Refusal> {
    let tasks = all_tasks(store)?;
    if tasks.iter().any(|existing| existing.id == task.id) {
        return Err(reject(RejectionKind::TaskConflict, format!("task {} exists", task.id), None));
    }
    if let Some(active) = tasks.iter().find(|existing| existing.kind == task.kind && !existing.state.is_terminal()) {
        let message = format!("{} task {} is {}", active.kind.name(), active.id, active.state.name());
        return Err(reject(RejectionKind::TaskConflict, message, None));
    }
    let mut ended: Vec<&TaskRecord> = tasks.iter().filter(|existing| existing.state.is_terminal()).collect();
    if ended.len() >= TASKS_KEPT {
        ended.sort_by_key(|existing| (existing.ended_ms, existing.created_ms));
        for old in &ended[..=ended.len() - TASKS_KEPT] {
            store.delete(&keys::task(&old.id));
        }
    }
    let mut record = task.clone();
    record.state = TaskState::Scheduled;
    put_json(store, keys::task(&record.id), &record);
    Ok(())
}

fn all_tasks(store: &impl StateRead) -> Result<Vec<TaskRecord>, StoreError> {
    let mut tasks = Vec::new();
    for_each_entry(store, &keys::task_prefix(), |_, value| {
        tasks.push(decode(value)?);
        Ok(())
    })?;
    Ok(tasks)
}

/// The task `id` if it may still change.
fn active_task(store: &impl StateRead, id: &str) -> Result<TaskRecord, Refusal> {
    let Some(task) = get_json::<TaskRecord>(store, &keys::task(id))? else {
        return Err(reject(RejectionKind::TaskUnknown, format!("task {id} does not exist"), None));
    };
    if task.state.is_terminal() {
        return Err(reject(RejectionKind::TaskConflict, format!("task {id} is {}", task.state.name()), None));
    }
    Ok(task)
}

fn update_task(store: &mut impl StateWrite, update: &TaskUpdate, now: u64) -> Result<(), Refusal> {
    let mut task = active_task(store, &update.id)?;
    if let Some(state) = update.state {
        if state == TaskState::Scheduled && task.state == TaskState::Running {
            return Err(reject(RejectionKind::TaskConflict, format!("task {} is running", task.id), None));
        }
        if state == TaskState::Running && task.started_ms.is_none() {
            task.started_ms = Some(now);
        }
        if state.is_terminal() {
            task.ended_ms = Some(now);
        }
        task.state = state;
    }
    if update.node.is_some() {
        task.node = update.node;
    }
    if update.error.is_some() {
        task.error = update.error.clone();
    }
    if update.cursor.is_some() {
        task.cursor = update.cursor.clone();
    }
    task.counters = task.counters.plus(update.counters);
    put_json(store, keys::task(&task.id), &task);
    Ok(())
}

fn cancel_task(store: &mut impl StateWrite, id: &str, now: u64) -> Result<(), Refusal> {
    let mut task = active_task(store, id)?;
    task.state = TaskState::Cancelled;
    task.ended_ms = Some(now);
    put_json(store, keys::task(id), &task);
    Ok(())
}

fn collect_blobs(
    store: &mut impl StateWrite,
    task_id: Option<&str>,
    digests: &[Digest],
    unreferenced_before_ms: u64,
    now: u64,
) -> Result<(), Refusal> {
    let mut task = batch_task(store, task_id, digests.len(), "blobs per collection")?;
    let mut gc = get_json::<GcState>(store, &keys::gc_state())?.unwrap_or_default();
    expire_tombstones(store, &mut gc, now)?;
    let epoch = gc.epoch + 1;
    let mut collected = TaskCounters::default();
    for digest in digests {
        let blob_key = keys::blob(digest);
        // A blob without a record is a stray copy (an upload that never finished): fenced and deleted too.
        if let Some(record) = get_json::<BlobRecord>(store, &blob_key)? {
            let unreferenced_long_enough =
                record.refcount == 0 && record.unreferenced_since_ms.is_some_and(|t| t <= unreferenced_before_ms);
            if !unreferenced_long_enough {
                continue;
            }
            store.delete(&blob_key);
            unlink_everywhere(store, digest)?;
            collected.blobs += 1;
            collected.bytes += record.size;
        }
        if let Some(old) = get_json::<Tombstone>(store, &keys::tombstone(digest))? {
            store.delete(&keys::tombstone_epoch(old.epoch, digest));
        }
        put_json(store, keys::tombstone(digest), &Tombstone { epoch, collected_ms: now });
        store.put(keys::tombstone_epoch(epoch, digest), Vec::new());
    }
    gc.epoch = epoch;
    put_json(store, keys::gc_state(), &gc);
    if let Some(task) = task.as_mut() {
        task.counters = task.counters.plus(collected);
        put_json(store, keys::task(&task.id), task);
    }
    Ok(())
}

/// The checks a GC batch command starts with: at most [`MAX_COLLECT_BATCH`]
/// items, and the task it counts into (if any) still active.
fn batch_task(
    store: &impl StateRead,
    task_id: Option<&str>,
    items: usize,
    what: &str,
) -> Result<Option<TaskRecord>, Refusal> {
    if items > MAX_COLLECT_BATCH {
        let message = format!("at most {MAX_COLLECT_BATCH} {what}, not {items}");
        return Err(reject(RejectionKind::Invalid, message, None));
    }
    task_id.map(|id| active_task(store, id)).transpose()
}

fn prune_manifests(
    store: &mut impl StateWrite,
    task_id: Option<&str>,
    repo: &str,
    digests: &[Digest],
    created_before_ms: u64,
    now: u64,
) -> Result<(), Refusal> {
    let mut task = batch_task(store, task_id, digests.len(), "manifests per prune")?;
    // Judged on the repository as it was before this command: deleting an index
    // does not free its children until the next command, which is conservative.
    let graph = RepoGraph::read(store, repo)?;
    let mut pruned = 0;
    for digest in digests {
        let Some(record) = get_json::<ManifestRecord>(store, &keys::repo_manifest(repo, digest))? else { continue };
        if graph.is_prunable(digest, &record, created_before_ms) {
            delete_manifest(store, repo, digest, now)?;
            pruned += 1;
        }
    }
    if let Some(task) = task.as_mut() {
        task.counters.manifests += pruned;
        put_json(store, keys::task(&task.id), task);
    }
    Ok(())
}

/// What keeps a manifest of one repository from being pruned as untagged.
#[derive(Debug, Default)]
pub struct RepoGraph {
    manifests: Vec<(Digest, ManifestRecord)>,
    present: HashSet<Digest>,
    tagged: HashSet<Digest>,
    children: HashSet<Digest>,
}

impl RepoGraph {
    /// Reads every manifest and tag of `repo` (a full scan of the repository).
    pub fn read<S: StateRead + ?Sized>(store: &S, repo: &str) -> Result<Self, StoreError> {
        let mut graph = RepoGraph::default();
        let prefix = keys::repo_manifest_prefix(repo);
        for_each_entry(store, &prefix, |key, value| {
            let (digest, _) = Digest::from_key_bytes(&key[prefix.len()..])
                .ok_or_else(|| StoreError("malformed manifest key".into()))?;
            let record: ManifestRecord = decode(value)?;
            graph.children.extend(record.manifests.iter().cloned());
            graph.present.insert(digest.clone());
            graph.manifests.push((digest, record));
            Ok(())
        })?;
        for_each_entry(store, &keys::tag_prefix(repo), |_, value| {
            graph.tagged.insert(decode::<TagRecord>(value)?.digest);
            Ok(())
        })?;
        Ok(graph)
    }

    /// Untagged, listed by no manifest of the repository, not a referrer of a
    /// manifest still there, and stored at `created_before_ms` or earlier.
    pub fn is_prunable(&self, digest: &Digest, record: &ManifestRecord, created_before_ms: u64) -> bool {
        record.created_ms <= created_before_ms
            && !self.tagged.contains(digest)
            && !self.children.contains(digest)
            && record.subject.as_ref().is_none_or(|subject| !self.present.contains(subject))
    }

    /// The prunable manifests, in digest-key order.
    pub fn prunable(&self, created_before_ms: u64) -> Vec<Digest> {
        self.manifests
            .iter()
            .filter(|(digest, record)| self.is_prunable(digest, record, created_before_ms))
            .map(|(digest, _)| digest.clone())
            .collect()
    }
}

/// Removes every repository link of a blob.
fn unlink_everywhere(store: &mut impl StateWrite, digest: &Digest) -> Result<(), StoreError> {
    let prefix = keys::blob_link_prefix(digest);
    loop {
        let page = store.scan(&prefix, None, SCAN_PAGE)?;
        for (key, _) in &page {
            if let Some(repo) = keys::blob_link_repo(key, &prefix) {
                store.delete(&keys::repo_blob(repo, digest));
            }
            store.delete(key);
        }
        if page.len() < SCAN_PAGE {
            return Ok(());
        }
    }
}

/// Drops tombstones older than the retention, oldest epochs first, raising the floor past them.
fn expire_tombstones(store: &mut impl StateWrite, gc: &mut GcState, now: u64) -> Result<(), StoreError> {
    let cutoff = now.saturating_sub(TOMBSTONE_RETENTION_MS);
    let oldest = store.scan(&keys::tombstone_epoch_prefix(), None, TOMBSTONE_EXPIRY_BATCH)?;
    for (key, _) in oldest {
        let Some((epoch, digest)) = keys::tombstone_epoch_parts(&key) else { continue };
        let tombstone_key = keys::tombstone(&digest);
        let tombstone = get_json::<Tombstone>(store, &tombstone_key)?;
        if tombstone.as_ref().is_some_and(|tombstone| tombstone.collected_ms >= cutoff) {
            break;
        }
        store.delete(&key);
        if tombstone.is_some_and(|tombstone| tombstone.epoch == epoch) {
            store.delete(&tombstone_key);
        }
        gc.floor = gc.floor.max(epoch);
    }
    Ok(())
}

fn ensure_repo(store: &mut impl StateWrite, repo: &str, now: u64) -> Result<(), StoreError> {
    let key = keys::repo(repo);
    if store.get(&key)?.is_none() {
        put_json(store, key, &RepoRecord { created_ms: now });
    }
    Ok(())
}

fn expire_request_ids(store: &mut impl StateWrite, now: u64) -> Result<(), StoreError> {
    let cutoff = now.saturating_sub(REQUEST_ID_RETENTION_MS);
    let oldest = store.scan(&keys::request_time_prefix(), None, REQUEST_ID_EXPIRY_BATCH)?;
    for (key, _) in oldest {
        let Some((time, id)) = keys::request_time_parts(&key) else { continue };
        if time >= cutoff {
            break;
        }
        store.delete(&key);
        store.delete(&keys::request(id));
    }
    Ok(())
}

/// Reads and decodes a JSON record.
pub fn get_json<T: DeserializeOwned>(store: &(impl StateRead + ?Sized), key: &[u8]) -> Result<Option<T>, StoreError> {
    store.get(key)?.map(|bytes| decode(&bytes)).transpose()
}

/// Decodes a JSON record.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|error| StoreError(format!("corrupt record: {error}")))
}

fn put_json<T: Serialize>(store: &mut impl StateWrite, key: Vec<u8>, value: &T) {
    let bytes = serde_json::to_vec(value).expect("records serialize to JSON");
    store.put(key, bytes);
}
