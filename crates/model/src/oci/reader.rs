//! Reads of the OCI domain.

use flotilla_storage::Digest;

use super::{keys, ManifestContent, ManifestRecord, RepoGraph, TagRecord};
use crate::blobs;
use crate::catalog::MAX_PAGE;
use crate::store::{get_json, StoreError, View};

/// A manifest as the read path needs it: its record in the repository and its bytes.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    pub digest: Digest,
    pub record: ManifestRecord,
    pub content: ManifestContent,
}

/// Reads repositories, links, manifests, tags and referrers.
///
/// Give it one point-in-time view ([`crate::Catalog::view`]) when a
/// query reads several keys that one command changes together.
pub struct Reader<'s> {
    store: View<'s>,
}

impl<'s> Reader<'s> {
    pub fn new(store: impl Into<View<'s>>) -> Self {
        Reader { store: store.into() }
    }

    /// Whether anything was ever pushed to `repo`.
    pub fn repo_exists(&self, repo: &str) -> Result<bool, StoreError> {
        Ok(self.store.get(&keys::repo(repo))?.is_some())
    }

    /// The size of a blob if it is linked in `repo`.
    pub fn linked_blob(&self, repo: &str, digest: &Digest) -> Result<Option<u64>, StoreError> {
        if self.store.get(&keys::repo_blob(repo, digest))?.is_none() {
            return Ok(None);
        }
        Ok(blobs::Reader::new(&*self.store).blob(digest)?.map(|record| record.size))
    }

    /// A manifest of `repo` by digest.
    pub fn manifest(&self, repo: &str, digest: &Digest) -> Result<Option<StoredManifest>, StoreError> {
        let Some(record) = get_json::<ManifestRecord>(&*self.store, &keys::repo_manifest(repo, digest))? else {
            return Ok(None);
        };
        let Some(content) = get_json::<ManifestContent>(&*self.store, &keys::content(digest))? else {
            return Err(StoreError(format!("manifest {digest} has a record but no content")));
        };
        Ok(Some(StoredManifest { digest: digest.clone(), record, content }))
    }

    /// The digest a tag points at.
    pub fn tag(&self, repo: &str, tag: &str) -> Result<Option<Digest>, StoreError> {
        Ok(get_json::<TagRecord>(&*self.store, &keys::tag(repo, tag))?.map(|record| record.digest))
    }

    /// Tags of `repo` in lexical order, strictly after `last`, at most `limit`.
    pub fn tags(&self, repo: &str, last: Option<&str>, limit: usize) -> Result<Vec<String>, StoreError> {
        let prefix = keys::tag_prefix(repo);
        let after = last.map(|last| keys::tag(repo, last));
        let entries = self.store.scan(&prefix, after.as_deref(), limit.min(MAX_PAGE))?;
        Ok(entries.iter().filter_map(|(key, _)| keys::tag_name_of(key, &prefix).map(str::to_owned)).collect())
    }

    /// Repository names in lexical order, strictly after `last`, at most `limit`.
    pub fn repositories(&self, last: Option<&str>, limit: usize) -> Result<Vec<String>, StoreError> {
        let after = last.map(keys::repo);
        let entries = self.store.scan(&[crate::store::tables::OCI_REPO], after.as_deref(), limit.min(MAX_PAGE))?;
        Ok(entries.iter().filter_map(|(key, _)| keys::repo_name_of(key).map(str::to_owned)).collect())
    }

    /// Manifests of `repo` whose `subject` is `subject`, at most `limit`.
    pub fn referrers(&self, repo: &str, subject: &Digest, limit: usize) -> Result<Vec<StoredManifest>, StoreError> {
        let prefix = keys::referrer_prefix(repo, subject);
        let entries = self.store.scan(&prefix, None, limit.min(MAX_PAGE))?;
        let mut referrers = Vec::with_capacity(entries.len());
        for (key, _) in entries {
            let Some(digest) = keys::referrer_of(&key, &prefix) else { continue };
            if let Some(manifest) = self.manifest(repo, &digest)? {
                referrers.push(manifest);
            }
        }
        Ok(referrers)
    }

    /// The manifests of `repo` that GC's untagged policy may delete: untagged,
    /// listed by no manifest of the repository, no live subject, stored at
    /// `created_before_ms` or earlier. A full scan of the repository.
    pub fn prunable_manifests(&self, repo: &str, created_before_ms: u64) -> Result<Vec<Digest>, StoreError> {
        Ok(RepoGraph::read(&*self.store, repo)?.prunable(created_before_ms))
    }
}
