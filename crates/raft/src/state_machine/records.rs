//! The records stored in the state machine's tables (serde_json values).

use std::collections::BTreeMap;

use flotilla_storage::Digest;
use serde::{Deserialize, Serialize};

use crate::command::Response;

/// A repository exists once anything was pushed to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoRecord {
    pub created_ms: u64,
}

/// A blob known to the cluster, with the count of manifests that reference it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRecord {
    pub size: u64,
    /// Number of (repository, manifest) records whose manifest references this blob.
    pub refcount: u64,
    pub created_ms: u64,
    /// When `refcount` last became zero (or the blob was recorded unreferenced);
    /// garbage collection waits a grace period from here. `None` while referenced.
    pub unreferenced_since_ms: Option<u64>,
}

/// A blob linked into a repository (readable there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRecord {
    pub linked_ms: u64,
}

/// The bytes of a manifest, shared by every repository that holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestContent {
    pub media_type: String,
    pub content: String,
    /// Number of repositories holding this manifest.
    pub refcount: u64,
}

/// A manifest held by a repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestRecord {
    pub media_type: String,
    pub size: u64,
    pub created_ms: u64,
    pub blobs: Vec<Digest>,
    pub manifests: Vec<Digest>,
    pub subject: Option<Digest>,
    pub artifact_type: Option<String>,
    pub annotations: BTreeMap<String, String>,
}

/// A tag and the manifest it points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagRecord {
    pub digest: Digest,
    pub updated_ms: u64,
}

/// The remembered outcome of a request id, so that a retry is applied once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedRequest {
    pub time_ms: u64,
    pub response: Response,
}

/// A blob forgotten by garbage collection. Nodes delete their copies from these;
/// an upload that began before `epoch` cannot record the blob again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    /// The collection that made it.
    pub epoch: u64,
    /// When the collection was applied (proposer's clock); copies written later are kept.
    pub collected_ms: u64,
}

/// Garbage-collection bookkeeping, one record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcState {
    /// Collections applied so far.
    pub epoch: u64,
    /// Tombstones of epochs up to here have expired; an upload that began
    /// before it cannot be checked against them and is refused.
    pub floor: u64,
}
