//! Which manifests garbage collection's untagged policy may delete.

use std::collections::HashSet;

use flotilla_storage::Digest;

use super::{keys, ManifestRecord, TagRecord};
use crate::store::{decode, for_each_entry, StateRead, StoreError};

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
