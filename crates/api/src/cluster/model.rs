//! The JSON documents of the `/_cluster` API.

use serde::Serialize;

/// `GET /_cluster/health`: can this cluster take writes and serve reads now?
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// `green` (leader known, every member reachable and layout synced),
    /// `yellow` (serving, but a member is down or data is moving),
    /// `red` (no leader reachable from this node: writes fail).
    pub status: String,
    pub leader: Option<u64>,
    pub voters: usize,
    pub voters_reachable: usize,
    pub layout_synced: bool,
}

/// `GET /_cluster/state`.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterState {
    pub cluster_id: String,
    /// The node that answered.
    pub node_id: u64,
    pub leader: Option<u64>,
    pub term: u64,
    pub last_applied: Option<u64>,
    pub nodes: Vec<NodeView>,
    pub layout: Option<LayoutSummary>,
}

/// One node as the cluster sees it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    pub id: u64,
    /// `voter`, `learner` (non-voting storage node) or `none` (not a Raft member).
    pub role: String,
    /// `active`, `draining` or `removed`.
    pub state: String,
    /// What gossip says: `alive`, `suspect`, `down` or `unknown` (not heard of yet).
    pub liveness: String,
    pub http_addr: String,
    pub rpc_addr: String,
    /// UDP address of its gossip (absent until the node registered one).
    pub gossip_addr: Option<String>,
    pub zone: Option<String>,
    pub capacity: u64,
    /// Replicas of partitions this node owns in the current layout.
    pub partitions: usize,
    /// Last log index the leader knows this node holds (leader only).
    pub matched_index: Option<u64>,
    pub joined_ms: u64,
}

/// The layout without its per-partition table.
#[derive(Debug, Clone, Serialize)]
pub struct LayoutSummary {
    pub version: u64,
    pub partitions: u32,
    pub replication_factor: u32,
    /// `synced`, or `syncing` while data moves to new owners.
    pub sync_state: String,
    pub created_ms: u64,
}

/// `GET /_cluster/layout`: the summary and each partition's owners.
#[derive(Debug, Clone, Serialize)]
pub struct LayoutView {
    #[serde(flatten)]
    pub summary: LayoutSummary,
    /// Replicas per node.
    pub replicas: std::collections::BTreeMap<u64, usize>,
    pub owners: Vec<Vec<u64>>,
    pub previous: Option<Vec<Vec<u64>>>,
}

/// A task of `/_cluster/tasks`.
#[derive(Debug, Clone, Serialize)]
pub struct TaskView {
    pub id: String,
    /// `gc`, `repair`, `scrub` or `optimize`.
    pub kind: String,
    /// `scheduled`, `running`, `finished`, `failed` or `cancelled`.
    pub state: String,
    /// `operator` or `schedule`.
    pub trigger: String,
    pub dry_run: bool,
    /// GC: the grace period asked for (seconds); absent = the node's `gc_grace`.
    pub grace_seconds: Option<u64>,
    /// GC: untagged manifests are deleted first (the opt-in policy).
    pub untagged: bool,
    /// What the task looked at, what it did (blobs and bytes) and what it could
    /// not do; per kind as `flotilla_model::tasks::TaskCounters` explains (GC:
    /// blob records looked at, blobs and bytes collected; repair: copies
    /// checked, copied, unrecoverable; scrub: copies hashed, corrupt ones
    /// replaced, left in quarantine; optimize: copies looked at, dropped, kept).
    pub scanned: u64,
    pub blobs: u64,
    pub bytes: u64,
    pub failed: u64,
    /// GC with `untagged`: untagged manifests deleted (in a dry run: that would be).
    pub manifests: u64,
    /// The node doing the work.
    pub node: Option<u64>,
    pub created: String,
    pub started: Option<String>,
    pub ended: Option<String>,
    pub error: Option<String>,
}

/// `GET /_cluster/tasks`.
#[derive(Debug, Clone, Serialize)]
pub struct TaskList {
    pub tasks: Vec<TaskView>,
}
