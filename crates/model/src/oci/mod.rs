//! The OCI domain: repositories, the blobs linked into them, manifests, tags
//! and referrers.
//!
//! Rules `apply` enforces: a manifest's blobs must be linked in its
//! repository (and recorded), its index entries must be manifests of its
//! repository; deletes name something that exists; a blob is linked only
//! once recorded through the blobs kernel's collection fence. Every manifest
//! record holds a reference on each of its blobs; the manifest bytes are
//! shared by the repositories holding them, with their own count.

mod invariants;
pub mod keys;
mod prune;
mod reader;
mod records;

use serde::{Deserialize, Serialize};

use flotilla_storage::{Digest, ErrorKind};

use crate::blobs::{self, Holder};
use crate::domain::Domain;
use crate::rejection::{Refusal, Rejection};
use crate::store::{decode, for_each_entry, get_json, put_json, StateRead, StateWrite, StoreError, Tx, SCAN_PAGE};
use crate::tasks::{count_into, counting_task, TaskCounters};

pub use prune::RepoGraph;
pub use reader::{Reader, StoredManifest};
pub use records::{LinkRecord, ManifestContent, ManifestRecord, PutManifest, RepoRecord, TagRecord};

/// Refusal codes of this domain: the OCI error codes they become.
pub mod code {
    pub const BLOB_UNKNOWN: &str = "BLOB_UNKNOWN";
    pub const MANIFEST_BLOB_UNKNOWN: &str = "MANIFEST_BLOB_UNKNOWN";
    pub const MANIFEST_UNKNOWN: &str = "MANIFEST_UNKNOWN";
    pub const NAME_UNKNOWN: &str = "NAME_UNKNOWN";
}

/// At most this many manifests per `PruneManifests`, bounding the cost of one apply.
pub const MAX_PRUNE_BATCH: usize = blobs::MAX_COLLECT_BATCH;

/// A change to repositories, blob links, manifests or tags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Records a verified blob and links it into `repo`. `gc_epoch` is the
    /// garbage-collection epoch the proposer had applied before the bytes were
    /// written; refused if the blob was collected in a later epoch (its bytes may
    /// be gone from some node), so the client uploads again.
    PutBlob {
        repo: String,
        digest: Digest,
        size: u64,
        #[serde(default)]
        gc_epoch: u64,
    },
    /// Links a blob already linked in `from` into `repo`.
    MountBlob { from: String, repo: String, digest: Digest },
    /// Removes a blob's link from `repo`; the bytes stay until garbage collection.
    UnlinkBlob { repo: String, digest: Digest },
    /// Stores a manifest in `repo`, optionally tagging it.
    PutManifest(Box<PutManifest>),
    /// Removes a manifest from `repo`, with every tag that points at it.
    DeleteManifest { repo: String, digest: Digest },
    /// Removes one tag.
    DeleteTag { repo: String, tag: String },
    /// Garbage collection's opt-in untagged policy: deletes each listed manifest
    /// of `repo` that is still prunable (re-checked here: no tag points at it, no
    /// manifest of the repository lists it, its subject is gone or absent, and
    /// it was stored at `created_before_ms` or earlier). Counted into `task`;
    /// refused if that task is terminal.
    PruneManifests { task: Option<String>, repo: String, digests: Vec<Digest>, created_before_ms: u64 },
}

/// What an OCI command that has something to report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Manifests deleted by a prune.
    Pruned { manifests: u64 },
}

/// The OCI domain.
pub struct Oci;

impl Domain for Oci {
    const NAME: &'static str = "oci";
    type Command = Command;
    type Outcome = Option<Outcome>;

    fn command_name(command: &Command) -> &'static str {
        match command {
            Command::PutBlob { .. } => "oci.put_blob",
            Command::MountBlob { .. } => "oci.mount_blob",
            Command::UnlinkBlob { .. } => "oci.unlink_blob",
            Command::PutManifest(_) => "oci.put_manifest",
            Command::DeleteManifest { .. } => "oci.delete_manifest",
            Command::DeleteTag { .. } => "oci.delete_tag",
            Command::PruneManifests { .. } => "oci.prune_manifests",
        }
    }

    fn apply(tx: &mut Tx<'_>, command: &Command) -> Result<Option<Outcome>, Refusal> {
        match command {
            Command::PutBlob { repo, digest, size, gc_epoch } => {
                blobs::record_blob(tx, digest, *size, *gc_epoch)?;
                link_blob(tx, repo, digest)?;
            }
            Command::MountBlob { from, repo, digest } => {
                if tx.get(&keys::repo_blob(from, digest))?.is_none() {
                    let rejection =
                        Rejection::new(ErrorKind::NotFound, code::BLOB_UNKNOWN, format!("blob unknown to {from}"));
                    return Err(rejection.with_digest(digest).into());
                }
                // A mount is a push of the blob: the grace period starts over.
                blobs::touch_blob(tx, digest)?;
                link_blob(tx, repo, digest)?;
            }
            Command::UnlinkBlob { repo, digest } => unlink_blob(tx, repo, digest)?,
            Command::PutManifest(manifest) => put_manifest(tx, manifest)?,
            Command::DeleteManifest { repo, digest } => delete_manifest(tx, repo, digest)?,
            Command::DeleteTag { repo, tag } => {
                let key = keys::tag(repo, tag);
                if tx.get(&key)?.is_none() {
                    let message = format!("tag {tag} unknown");
                    return Err(Rejection::new(ErrorKind::NotFound, code::MANIFEST_UNKNOWN, message).into());
                }
                tx.delete(&key);
            }
            Command::PruneManifests { task, repo, digests, created_before_ms } => {
                let manifests = prune_manifests(tx, task.as_deref(), repo, digests, *created_before_ms)?;
                return Ok(Some(Outcome::Pruned { manifests }));
            }
        }
        Ok(None)
    }

    fn check_invariants(store: &dyn StateRead) -> Result<(), String> {
        invariants::check(store).map_err(|error| error.to_string())
    }
}

impl From<Option<Outcome>> for crate::request::Outcome {
    fn from(outcome: Option<Outcome>) -> Self {
        outcome.map_or(crate::request::Outcome::None, crate::request::Outcome::Oci)
    }
}

fn link_blob(tx: &mut Tx<'_>, repo: &str, digest: &Digest) -> Result<(), Refusal> {
    ensure_repo(tx, repo)?;
    let link_key = keys::repo_blob(repo, digest);
    if tx.get(&link_key)?.is_none() {
        put_json(tx, link_key, &LinkRecord { linked_ms: tx.now_ms });
        tx.put(keys::blob_link(digest, repo), Vec::new());
    }
    Ok(())
}

fn unlink_blob(tx: &mut Tx<'_>, repo: &str, digest: &Digest) -> Result<(), Refusal> {
    let link_key = keys::repo_blob(repo, digest);
    if tx.get(&link_key)?.is_none() {
        let rejection = Rejection::new(ErrorKind::NotFound, code::BLOB_UNKNOWN, "blob unknown to repository");
        return Err(rejection.with_digest(digest).into());
    }
    tx.delete(&link_key);
    tx.delete(&keys::blob_link(digest, repo));
    Ok(())
}

/// The blobs kernel collected `digest`: it is linked nowhere any more.
pub(crate) fn forget_blob(tx: &mut Tx<'_>, digest: &Digest) -> Result<(), StoreError> {
    let prefix = keys::blob_link_prefix(digest);
    loop {
        let page = tx.scan(&prefix, None, SCAN_PAGE)?;
        for (key, _) in &page {
            if let Some(repo) = keys::blob_link_repo(key, &prefix) {
                tx.delete(&keys::repo_blob(repo, digest));
            }
            tx.delete(key);
        }
        if page.len() < SCAN_PAGE {
            return Ok(());
        }
    }
}

fn put_manifest(tx: &mut Tx<'_>, manifest: &PutManifest) -> Result<(), Refusal> {
    let repo = manifest.repo.as_str();
    check_manifest_references(tx, manifest)?;
    let record_key = keys::repo_manifest(repo, &manifest.digest);
    if tx.get(&record_key)?.is_none() {
        ensure_repo(tx, repo)?;
        add_manifest_record(tx, manifest)?;
    }
    if let Some(tag) = &manifest.tag {
        let record = TagRecord { digest: manifest.digest.clone(), updated_ms: tx.now_ms };
        put_json(tx, keys::tag(repo, tag), &record);
    }
    Ok(())
}

fn check_manifest_references(store: &impl StateRead, manifest: &PutManifest) -> Result<(), Refusal> {
    let missing = |digest: &Digest, what: &str| -> Refusal {
        let message = format!("{what} {digest} is not in repository {}", manifest.repo);
        Rejection::new(ErrorKind::PreconditionFailed, code::MANIFEST_BLOB_UNKNOWN, message).with_digest(digest).into()
    };
    for blob in &manifest.blobs {
        // The record is checked too: a link written before links were indexed by blob may outlive a collection.
        let linked = store.get(&keys::repo_blob(&manifest.repo, blob))?.is_some();
        if !linked || !blobs::is_recorded(store, blob)? {
            return Err(missing(blob, "blob"));
        }
    }
    for child in &manifest.manifests {
        if store.get(&keys::repo_manifest(&manifest.repo, child))?.is_none() {
            return Err(missing(child, "manifest"));
        }
    }
    Ok(())
}

fn add_manifest_record(tx: &mut Tx<'_>, manifest: &PutManifest) -> Result<(), Refusal> {
    let holder = Holder::OciManifest { repo: manifest.repo.clone(), manifest: manifest.digest.clone() };
    for blob in &manifest.blobs {
        blobs::add_ref(tx, blob, &holder)?;
    }
    let content_key = keys::content(&manifest.digest);
    let content = match get_json::<ManifestContent>(tx, &content_key)? {
        Some(mut existing) => {
            existing.refcount += 1;
            existing
        }
        None => {
            ManifestContent { media_type: manifest.media_type.clone(), content: manifest.content.clone(), refcount: 1 }
        }
    };
    put_json(tx, content_key, &content);
    if let Some(subject) = &manifest.subject {
        tx.put(keys::referrer(&manifest.repo, subject, &manifest.digest), Vec::new());
    }
    let record = ManifestRecord {
        media_type: manifest.media_type.clone(),
        size: manifest.content.len() as u64,
        created_ms: tx.now_ms,
        blobs: manifest.blobs.clone(),
        manifests: manifest.manifests.clone(),
        subject: manifest.subject.clone(),
        artifact_type: manifest.artifact_type.clone(),
        annotations: manifest.annotations.clone(),
    };
    put_json(tx, keys::repo_manifest(&manifest.repo, &manifest.digest), &record);
    Ok(())
}

fn delete_manifest(tx: &mut Tx<'_>, repo: &str, digest: &Digest) -> Result<(), Refusal> {
    let record_key = keys::repo_manifest(repo, digest);
    let Some(record) = get_json::<ManifestRecord>(tx, &record_key)? else {
        let rejection = Rejection::new(ErrorKind::NotFound, code::MANIFEST_UNKNOWN, "manifest unknown to repository");
        return Err(rejection.with_digest(digest).into());
    };
    for tag_key in tags_pointing_at(tx, repo, digest)? {
        tx.delete(&tag_key);
    }
    let holder = Holder::OciManifest { repo: repo.to_owned(), manifest: digest.clone() };
    for blob in &record.blobs {
        blobs::drop_ref(tx, blob, &holder)?;
    }
    let content_key = keys::content(digest);
    if let Some(mut content) = get_json::<ManifestContent>(tx, &content_key)? {
        content.refcount = content.refcount.saturating_sub(1);
        if content.refcount == 0 {
            tx.delete(&content_key);
        } else {
            put_json(tx, content_key, &content);
        }
    }
    if let Some(subject) = &record.subject {
        tx.delete(&keys::referrer(repo, subject, digest));
    }
    tx.delete(&record_key);
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

fn prune_manifests(
    tx: &mut Tx<'_>,
    task_id: Option<&str>,
    repo: &str,
    digests: &[Digest],
    created_before_ms: u64,
) -> Result<u64, Refusal> {
    let task = counting_task(tx, task_id, digests.len(), MAX_PRUNE_BATCH, "manifests per prune")?;
    // Judged on the repository as it was before this command: deleting an index
    // does not free its children until the next command, which is conservative.
    let graph = RepoGraph::read(tx, repo)?;
    let mut pruned = 0;
    for digest in digests {
        let Some(record) = get_json::<ManifestRecord>(tx, &keys::repo_manifest(repo, digest))? else { continue };
        if graph.is_prunable(digest, &record, created_before_ms) {
            delete_manifest(tx, repo, digest)?;
            pruned += 1;
        }
    }
    count_into(tx, task, TaskCounters { manifests: pruned, ..TaskCounters::default() });
    Ok(pruned)
}

/// The blobs kernel's backfill: holder rows for the references of at most
/// `limit` manifest records after `after`; the last one looked at, or `None`
/// once every record was.
pub(crate) fn backfill_holders(
    tx: &mut Tx<'_>,
    after: Option<(&str, &Digest)>,
    limit: usize,
) -> Result<Option<(String, Digest)>, StoreError> {
    let start = after.map(|(repo, digest)| keys::repo_manifest(repo, digest));
    let page = tx.scan(&[crate::store::tables::OCI_REPO_MANIFEST], start.as_deref(), limit)?;
    let mut last = None;
    for (key, value) in &page {
        let (repo, digest) =
            keys::repo_manifest_parts(key).ok_or_else(|| StoreError(format!("malformed manifest key {key:?}")))?;
        let record: ManifestRecord = decode(value)?;
        let holder = Holder::OciManifest { repo: repo.to_owned(), manifest: digest.clone() };
        for blob in &record.blobs {
            blobs::backfill_ref(tx, blob, &holder)?;
        }
        last = Some((repo.to_owned(), digest));
    }
    Ok(if page.len() < limit { None } else { last })
}

fn ensure_repo(tx: &mut Tx<'_>, repo: &str) -> Result<(), StoreError> {
    let key = keys::repo(repo);
    if tx.get(&key)?.is_none() {
        put_json(tx, key, &RepoRecord { created_ms: tx.now_ms });
    }
    Ok(())
}
