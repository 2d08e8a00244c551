//! The records of the OCI domain.

use std::collections::BTreeMap;

use flotilla_storage::Digest;
use serde::{Deserialize, Serialize};

/// A repository exists once anything was pushed to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoRecord {
    pub created_ms: u64,
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

/// A manifest to store, already parsed and validated by the proposer; `apply`
/// re-checks what depends on state (referenced blobs and manifests exist).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PutManifest {
    pub repo: String,
    pub digest: Digest,
    pub media_type: String,
    /// The manifest exactly as pushed (valid JSON, hence UTF-8).
    pub content: String,
    pub tag: Option<String>,
    /// Blobs the manifest references (config and layers), deduplicated.
    pub blobs: Vec<Digest>,
    /// Manifests the manifest references (index entries), deduplicated.
    pub manifests: Vec<Digest>,
    pub subject: Option<Digest>,
    pub artifact_type: Option<String>,
    pub annotations: BTreeMap<String, String>,
}
