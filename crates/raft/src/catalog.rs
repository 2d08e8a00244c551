//! Read queries over the applied state, for the REST surfaces.
//!
//! `Catalog` reads the local replica. Whether a read is linearizable is decided
//! by the caller ([`crate::MetaClient::read`] or [`crate::MetaClient::local`]) before it reads.

use std::sync::Arc;

use flotilla_storage::Digest;

use crate::cluster::{Layout, NodeRecord};
use crate::command::{ClusterSettings, UserRecord};
use crate::state_machine::keys;
use crate::state_machine::model::{decode, get_json};
use crate::state_machine::records::{BlobRecord, ManifestContent, ManifestRecord, TagRecord};
use crate::state_machine::{StateRead, StoreError};
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

    /// The current partition layout, once one was computed.
    pub fn layout(&self) -> Result<Option<Layout>, StoreError> {
        get_json(&*self.reader, &keys::layout())
    }
}
