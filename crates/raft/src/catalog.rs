//! Read queries over the applied state, for the REST surfaces.
//!
//! `Catalog` reads the local replica. Whether a read is linearizable is decided
//! by the caller ([`crate::MetaClient::read`] or [`crate::MetaClient::local`]) before it reads.

use std::sync::Arc;

use flotilla_storage::Digest;

use crate::cluster::{Layout, NodeRecord};
use crate::command::{ClusterSettings, UserRecord};
use crate::state_machine::keys;
use crate::state_machine::model::{decode, get_json, RepoGraph};
use crate::state_machine::records::{BlobRecord, GcState, ManifestContent, ManifestRecord, TagRecord, Tombstone};
use crate::state_machine::{StateRead, StoreError};
use crate::task::TaskRecord;
use crate::types::NodeId;

/// The most entries one list call returns, whatever the client asks for.
pub const MAX_PAGE: usize = 10_000;

/// A manifest as the read path needs it: its record in the repository and its bytes.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    pub digest: Digest,
    pub record: ManifestRecord,
    pub content: ManifestContent,
}

/// Read-only queries over the local replica.
#[derive(Clone)]
pub struct Catalog {
    reader: Arc<dyn StateRead + Send + Sync>,
}

impl Catalog {
    pub fn new(reader: Arc<dyn StateRead + Send + Sync>) -> Self {
        Catalog { reader }
    }

    /// Whether anything was ever pushed to `repo`.
    pub fn repo_exists(&self, repo: &str) -> Result<bool, StoreError> {
        Ok(self.reader.get(&keys::repo(repo))?.is_some())
    }

    /// The size of a blob if it is linked in `repo`.
    pub fn linked_blob(&self, repo: &str, digest: &Digest) -> Result<Option<u64>, StoreError> {
        if self.reader.get(&keys::repo_blob(repo, digest))?.is_none() {
            return Ok(None);
        }
        Ok(self.blob(digest)?.map(|record| record.size))
    }

    /// The cluster-wide record of a blob.
    pub fn blob(&self, digest: &Digest) -> Result<Option<BlobRecord>, StoreError> {
        get_json(&*self.reader, &keys::blob(digest))
    }

    /// A manifest of `repo` by digest.
    pub fn manifest(&self, repo: &str, digest: &Digest) -> Result<Option<StoredManifest>, StoreError> {
        let Some(record) = get_json::<ManifestRecord>(&*self.reader, &keys::repo_manifest(repo, digest))? else {
            return Ok(None);
        };
        let Some(content) = get_json::<ManifestContent>(&*self.reader, &keys::content(digest))? else {
            return Err(StoreError(format!("manifest {digest} has a record but no content")));
        };
        Ok(Some(StoredManifest { digest: digest.clone(), record, content }))
    }

    /// The digest a tag points at.
    pub fn tag(&self, repo: &str, tag: &str) -> Result<Option<Digest>, StoreError> {
        Ok(get_json::<TagRecord>(&*self.reader, &keys::tag(repo, tag))?.map(|record| record.digest))
    }

    /// Tags of `repo` in lexical order, strictly after `last`, at most `limit`.
    pub fn tags(&self, repo: &str, last: Option<&str>, limit: usize) -> Result<Vec<String>, StoreError> {
        let prefix = keys::tag_prefix(repo);
        let after = last.map(|last| keys::tag(repo, last));
        let entries = self.reader.scan(&prefix, after.as_deref(), limit.min(MAX_PAGE))?;
        Ok(entries.iter().filter_map(|(key, _)| keys::tag_name_of(key, &prefix).map(str::to_owned)).collect())
    }

    /// Repository names in lexical order, strictly after `last`, at most `limit`.
    pub fn repositories(&self, last: Option<&str>, limit: usize) -> Result<Vec<String>, StoreError> {
        let after = last.map(keys::repo);
        let entries = self.reader.scan(&keys::repo_prefix(), after.as_deref(), limit.min(MAX_PAGE))?;
        Ok(entries.iter().filter_map(|(key, _)| keys::repo_name_of(key).map(str::to_owned)).collect())
    }

    /// Manifests of `repo` whose `subject` is `subject`, at most `MAX_PAGE`.
    pub fn referrers(&self, repo: &str, subject: &Digest) -> Result<Vec<StoredManifest>, StoreError> {
        let prefix = keys::referrer_prefix(repo, subject);
        let entries = self.reader.scan(&prefix, None, MAX_PAGE)?;
        let mut referrers = Vec::with_capacity(entries.len());
        for (key, _) in entries {
            let Some(digest) = keys::referrer_of(&key, &prefix) else { continue };
            if let Some(manifest) = self.manifest(repo, &digest)? {
                referrers.push(manifest);
            }
        }
        Ok(referrers)
    }

    /// A user account.
    pub fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        get_json(&*self.reader, &keys::user(name))
    }

    /// Every user account (bounded by `MAX_PAGE`).
    pub fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let entries = self.reader.scan(&keys::user_prefix(), None, MAX_PAGE)?;
        entries.iter().map(|(_, value)| decode(value)).collect()
    }

    /// Cluster settings, once the cluster is initialised.
    pub fn settings(&self) -> Result<Option<ClusterSettings>, StoreError> {
        get_json(&*self.reader, &keys::settings())
    }

    /// What the cluster knows about node `id`.
    pub fn node(&self, id: NodeId) -> Result<Option<NodeRecord>, StoreError> {
        get_json(&*self.reader, &keys::node(id))
    }

    /// Every node ever recorded, removed ones included, by id.
    pub fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        let entries = self.reader.scan(&keys::node_prefix(), None, MAX_PAGE)?;
        entries.iter().map(|(_, value)| decode(value)).collect()
    }

    /// The manifests of `repo` that GC's untagged policy may delete: untagged,
    /// listed by no manifest of the repository, no live subject, stored at
    /// `created_before_ms` or earlier. A full scan of the repository.
    pub fn prunable_manifests(&self, repo: &str, created_before_ms: u64) -> Result<Vec<Digest>, StoreError> {
        Ok(RepoGraph::read(&*self.reader, repo)?.prunable(created_before_ms))
    }

    /// Blob records in digest order, strictly after `after`, at most `limit` (for garbage collection).
    pub fn blobs(&self, after: Option<&Digest>, limit: usize) -> Result<Vec<(Digest, BlobRecord)>, StoreError> {
        let after = after.map(keys::blob);
        let entries = self.reader.scan(&keys::blob_prefix(), after.as_deref(), limit.min(MAX_PAGE))?;
        let mut blobs = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let digest = keys::blob_digest_of(&key).ok_or_else(|| StoreError("malformed blob key".into()))?;
            blobs.push((digest, decode(&value)?));
        }
        Ok(blobs)
    }

    /// Garbage-collection epochs (zero before the first collection).
    pub fn gc_state(&self) -> Result<GcState, StoreError> {
        Ok(get_json(&*self.reader, &keys::gc_state())?.unwrap_or_default())
    }

    /// Tombstones in the order of the collections that made them, strictly
    /// after `after` (an epoch and digest), at most `limit`: `(epoch, digest, collected_ms)`.
    pub fn tombstones(
        &self,
        after: Option<(u64, &Digest)>,
        limit: usize,
    ) -> Result<Vec<(u64, Digest, u64)>, StoreError> {
        let start = after.map(|(epoch, digest)| keys::tombstone_epoch(epoch, digest));
        let entries = self.reader.scan(&keys::tombstone_epoch_prefix(), start.as_deref(), limit.min(MAX_PAGE))?;
        let mut tombstones = Vec::with_capacity(entries.len());
        for (key, _) in entries {
            let (epoch, digest) =
                keys::tombstone_epoch_parts(&key).ok_or_else(|| StoreError("malformed tombstone key".into()))?;
            let collected_ms = get_json::<Tombstone>(&*self.reader, &keys::tombstone(&digest))?
                .filter(|tombstone| tombstone.epoch == epoch)
                .map_or(0, |tombstone| tombstone.collected_ms);
            tombstones.push((epoch, digest, collected_ms));
        }
        Ok(tombstones)
    }

    /// A task by id.
    pub fn task(&self, id: &str) -> Result<Option<TaskRecord>, StoreError> {
        get_json(&*self.reader, &keys::task(id))
    }

    /// Every task kept, newest first.
    pub fn tasks(&self) -> Result<Vec<TaskRecord>, StoreError> {
        let entries = self.reader.scan(&keys::task_prefix(), None, MAX_PAGE)?;
        let mut tasks: Vec<TaskRecord> = entries.iter().map(|(_, value)| decode(value)).collect::<Result<_, _>>()?;
        tasks.sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then_with(|| a.id.cmp(&b.id)));
        Ok(tasks)
    }

    /// The current partition layout, once one was computed.
    pub fn layout(&self) -> Result<Option<Layout>, StoreError> {
        get_json(&*self.reader, &keys::layout())
    }
}
