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
//! - a removed node stays removed; layouts advance one version at a time.

use serde::de::DeserializeOwned;
use serde::Serialize;

use flotilla_storage::Digest;

use super::keys;
use super::records::{AppliedRequest, BlobRecord, LinkRecord, ManifestContent, ManifestRecord, RepoRecord, TagRecord};
use super::{StateRead, StateWrite, StoreError};
use crate::cluster::{Layout, NodeRecord, NodeState};
use crate::command::{ClusterSettings, Command, PutManifest, Rejection, RejectionKind, Request, Response, UserRecord};
use crate::types::NodeId;

/// How long a request id is remembered for deduplicating retries (ms).
/// Far longer than any client retry through an election.
pub const REQUEST_ID_RETENTION_MS: u64 = 15 * 60 * 1000;
/// At most this many expired request ids are dropped per apply, bounding its cost.
const REQUEST_ID_EXPIRY_BATCH: usize = 32;
/// Page size for scans inside apply.
const SCAN_PAGE: usize = 512;

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
        Command::PutBlob { repo, digest, size } => put_blob(store, repo, digest, *size, now),
        Command::MountBlob { from, repo, digest } => mount_blob(store, from, repo, digest, now),
        Command::UnlinkBlob { repo, digest } => unlink_blob(store, repo, digest),
        Command::PutManifest(manifest) => put_manifest(store, manifest, now),
        Command::DeleteManifest { repo, digest } => delete_manifest(store, repo, digest, now),
        Command::DeleteTag { repo, tag } => delete_tag(store, repo, tag),
        Command::PutNode(node) => put_node(store, node),
        Command::SetNodeState { id, state } => set_node_state(store, *id, *state),
        Command::PutLayout(layout) => put_layout(store, layout),
        Command::MarkLayoutSynced { version } => mark_layout_synced(store, *version),
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

fn put_blob(store: &mut impl StateWrite, repo: &str, digest: &Digest, size: u64, now: u64) -> Result<(), Refusal> {
    let blob_key = keys::blob(digest);
    match get_json::<BlobRecord>(store, &blob_key)? {
        Some(existing) if existing.size != size => {
            return Err(reject(
                RejectionKind::Conflict,
                format!("blob recorded with size {}, not {size}", existing.size),
                Some(digest),
            ));
        }
        Some(_) => {}
        None => {
            let record = BlobRecord { size, refcount: 0, created_ms: now, unreferenced_since_ms: Some(now) };
            put_json(store, blob_key, &record);
        }
    }
    link_blob(store, repo, digest, now)
}

fn link_blob(store: &mut impl StateWrite, repo: &str, digest: &Digest, now: u64) -> Result<(), Refusal> {
    ensure_repo(store, repo, now)?;
    let link_key = keys::repo_blob(repo, digest);
    if store.get(&link_key)?.is_none() {
        put_json(store, link_key, &LinkRecord { linked_ms: now });
    }
    Ok(())
}

fn mount_blob(store: &mut impl StateWrite, from: &str, repo: &str, digest: &Digest, now: u64) -> Result<(), Refusal> {
    if store.get(&keys::repo_blob(from, digest))?.is_none() {
        return Err(reject(RejectionKind::BlobUnknown, format!("blob unknown to {from}"), Some(digest)));
    }
    link_blob(store, repo, digest, now)
}

fn unlink_blob(store: &mut impl StateWrite, repo: &str, digest: &Digest) -> Result<(), Refusal> {
    let link_key = keys::repo_blob(repo, digest);
    if store.get(&link_key)?.is_none() {
        return Err(reject(RejectionKind::BlobUnknown, "blob unknown to repository", Some(digest)));
    }
    store.delete(&link_key);
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
        if store.get(&keys::repo_blob(&manifest.repo, blob))?.is_none() {
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
    let prefix = keys::tag_prefix(repo);
    let mut matching = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = store.scan(&prefix, after.as_deref(), SCAN_PAGE)?;
        let done = page.len() < SCAN_PAGE;
        for (key, value) in page {
            if decode::<TagRecord>(&value)?.digest == *digest {
                matching.push(key.clone());
            }
            after = Some(key);
        }
        if done {
            return Ok(matching);
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
