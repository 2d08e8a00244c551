//! The command set of the replicated state machine.
//!
//! Every write in Flotilla is one [`Request`]: a [`Command`] plus the request id
//! and the wall-clock time chosen by the proposer. `apply` never reads a clock or
//! generates an id, so every replica computes the same state from the same log.

use std::collections::BTreeMap;
use std::fmt;

use flotilla_storage::Digest;
use serde::{Deserialize, Serialize};

use crate::cluster::{Layout, NodeRecord, NodeState};
use crate::task::{TaskRecord, TaskUpdate};
use crate::types::NodeId;

/// Identifies one client-visible write; a repeated id is applied once and the
/// first response is returned again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RequestId(pub u128);

impl RequestId {
    /// A fresh random id.
    pub fn random() -> Self {
        RequestId(uuid::Uuid::new_v4().as_u128())
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", uuid::Uuid::from_u128(self.0))
    }
}

/// One replicated write: what to do, and the id and time the proposer assigned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub request_id: RequestId,
    /// Milliseconds since the Unix epoch, read once by the proposer.
    pub time_ms: u64,
    pub command: Command,
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.request_id, self.command.name())
    }
}

/// A write to the metadata state machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Sets cluster-wide settings (first start, or an operator change).
    PutSettings(ClusterSettings),
    /// Creates or replaces a user.
    PutUser(UserRecord),
    /// Removes a user.
    DeleteUser { name: String },
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
    /// Records a node that joined, or its new addresses, zone or capacity.
    /// Refused for a removed node.
    PutNode(NodeRecord),
    /// Moves a node to `state` (drain, or remove for good). Refused for an
    /// unknown node and for leaving `Removed`.
    SetNodeState { id: NodeId, state: NodeState },
    /// Installs the next layout; refused unless its version is the current one plus one.
    PutLayout(Box<Layout>),
    /// The data of layout `version` has moved: drop its `previous` owners.
    MarkLayoutSynced { version: u64 },
    /// Records a new task; refused while another task of its kind is scheduled or running.
    CreateTask(Box<TaskRecord>),
    /// Changes a task; refused for an unknown or terminal task.
    UpdateTask(TaskUpdate),
    /// Cancels a task; refused for an unknown or terminal task.
    CancelTask { id: String },
    /// Garbage collection: forgets each listed blob that no manifest references
    /// and that has been unreferenced since `unreferenced_before_ms` or earlier
    /// (re-checked here), or that has no record at all (a stray copy). Each
    /// collected blob gets a tombstone in a new epoch, from which every node
    /// deletes its copy. Counted into `task`; refused if that task is terminal.
    CollectBlobs { task: Option<String>, digests: Vec<Digest>, unreferenced_before_ms: u64 },
    /// Garbage collection's opt-in untagged policy: deletes each listed manifest
    /// of `repo` that is still prunable (re-checked here: no tag points at it, no
    /// manifest of the repository lists it, its subject is gone or absent, and
    /// it was stored at `created_before_ms` or earlier). Counted into `task`;
    /// refused if that task is terminal.
    PruneManifests { task: Option<String>, repo: String, digests: Vec<Digest>, created_before_ms: u64 },
}

impl Command {
    /// A short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Command::PutSettings(_) => "put_settings",
            Command::PutUser(_) => "put_user",
            Command::DeleteUser { .. } => "delete_user",
            Command::PutBlob { .. } => "put_blob",
            Command::MountBlob { .. } => "mount_blob",
            Command::UnlinkBlob { .. } => "unlink_blob",
            Command::PutManifest(_) => "put_manifest",
            Command::DeleteManifest { .. } => "delete_manifest",
            Command::DeleteTag { .. } => "delete_tag",
            Command::PutNode(_) => "put_node",
            Command::SetNodeState { .. } => "set_node_state",
            Command::PutLayout(_) => "put_layout",
            Command::MarkLayoutSynced { .. } => "mark_layout_synced",
            Command::CreateTask(_) => "create_task",
            Command::UpdateTask(_) => "update_task",
            Command::CancelTask { .. } => "cancel_task",
            Command::CollectBlobs { .. } => "collect_blobs",
            Command::PruneManifests { .. } => "prune_manifests",
        }
    }
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

/// Cluster-wide settings, one record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSettings {
    /// Random id fixed when the cluster is created; nodes of other clusters are refused.
    pub cluster_id: String,
    /// Secret (hex) that signs registry bearer tokens; the same on every node.
    pub token_secret: String,
}

/// A user account; the password is stored only as a slow hash (PHC string).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub name: String,
    /// Argon2id PHC string; empty for accounts that cannot log in (`anonymous`).
    pub password_hash: String,
    pub admin: bool,
    pub grants: Vec<Grant>,
    pub created_ms: u64,
}

/// Permission on the repositories matching `repository`: an exact name, or a
/// prefix ending in `*` (`team/*`, or `*` for all).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub repository: String,
    pub read: bool,
    pub write: bool,
    pub delete: bool,
}

impl Grant {
    /// Whether this grant covers `repo`.
    pub fn matches(&self, repo: &str) -> bool {
        match self.repository.strip_suffix('*') {
            Some(prefix) => repo.starts_with(prefix),
            None => self.repository == repo,
        }
    }
}

/// The outcome of applying a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Applied.
    Ok,
    /// Refused by a precondition that `apply` checks against current state.
    Rejected(Rejection),
}

/// A precondition that did not hold; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub kind: RejectionKind,
    pub message: String,
    /// The digest that caused the rejection, when there is one.
    pub digest: Option<Digest>,
}

/// Why `apply` refused a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RejectionKind {
    BlobUnknown,
    ManifestBlobUnknown,
    ManifestUnknown,
    NameUnknown,
    /// The same digest was recorded with a different size or content.
    Conflict,
    UserUnknown,
    NodeUnknown,
    /// The node was removed from the cluster and cannot come back under its id.
    NodeRemoved,
    /// A layout or node change that is malformed or out of order.
    Invalid,
    TaskUnknown,
    /// Another task of the kind is active, or the task already ended.
    TaskConflict,
    /// The blob was garbage-collected while it was being uploaded.
    BlobCollected,
}
