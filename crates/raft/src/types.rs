//! The openraft type configuration and the small identifier types of the cluster.

use std::fmt;

use serde::{Deserialize, Serialize};

use flotilla_model::{Request, Response};

pub use flotilla_model::NodeId;

/// How to reach a node; stored in Raft membership.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAddr {
    /// gRPC address for Raft and inter-node RPC (`host:port`).
    pub rpc_addr: String,
    /// HTTP address of the REST surfaces (`host:port`).
    pub http_addr: String,
}

impl fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rpc={} http={}", self.rpc_addr, self.http_addr)
    }
}

openraft::declare_raft_types!(
    /// Flotilla's Raft types: requests carry commands; a snapshot is a file on disk,
    /// streamed in chunks by the transport so it is never held in memory whole.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = NodeId,
        Node = NodeAddr,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The Raft handle with Flotilla's types.
pub type Raft = openraft::Raft<TypeConfig>;
/// A log entry.
pub type Entry = openraft::Entry<TypeConfig>;
/// A log id.
pub type LogId = openraft::LogId<NodeId>;
/// A vote.
pub type Vote = openraft::Vote<NodeId>;
/// A stored membership.
pub type StoredMembership = openraft::StoredMembership<NodeId, NodeAddr>;
/// A snapshot's metadata.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, NodeAddr>;
/// A snapshot.
pub type Snapshot = openraft::Snapshot<TypeConfig>;
/// A storage error.
pub type StorageError = openraft::StorageError<NodeId>;
/// A node's Raft metrics.
pub type RaftMetrics = openraft::RaftMetrics<NodeId, NodeAddr>;
