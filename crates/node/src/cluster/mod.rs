//! This node's view of its cluster and the services that change it.
//!
//! - [`ClusterView`]: who the members are, how to reach them, who leads, and
//!   the current partition layout (cached until the next applied entry).
//! - [`join`]: a new node asks any member to admit it (`--join`).
//! - [`service`]: the gRPC `ClusterService` that admits nodes on the leader
//!   and tells its wall clock.
//! - [`clock`]: keeps cluster time on the voters' median clock.
//! - [`gossip`]: SWIM failure detection over authenticated UDP (foca).
//! - [`liveness`]: keeps gossip's roster equal to the Raft members and says
//!   who is alive.
//! - [`admin`]: the node's side of the `/_cluster` API.
//! - [`membership`]: the one control loop that changes Raft membership and
//!   the layout: promotes learners, repairs joint configurations, recomputes
//!   the layout, syncs it and finishes drains.

pub mod admin;
pub mod clock;
pub mod gossip;
pub mod join;
pub mod liveness;
pub mod membership;
pub mod service;

use std::sync::Arc;

use parking_lot::Mutex;

use flotilla_model::system::Layout;
use flotilla_model::Catalog;
use flotilla_raft::types::{Raft, RaftMetrics};
use flotilla_raft::{NodeAddr, NodeId};

/// Read-only facts about the cluster, cheap to ask on every request.
pub struct ClusterView {
    node_id: NodeId,
    raft: Raft,
    catalog: Catalog,
    metrics: tokio::sync::watch::Receiver<RaftMetrics>,
    layout: Mutex<CachedLayout>,
}

/// The layout as read at some applied index; re-read when the index moves.
#[derive(Default)]
struct CachedLayout {
    applied: Option<u64>,
    layout: Option<Arc<Layout>>,
}

impl ClusterView {
    pub fn new(node_id: NodeId, raft: Raft, catalog: Catalog) -> Self {
        let metrics = raft.metrics();
        ClusterView { node_id, raft, catalog, metrics, layout: Mutex::new(CachedLayout::default()) }
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The Raft handle.
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The local replica's catalog (no read fence).
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The latest Raft metrics of this node.
    pub fn metrics(&self) -> RaftMetrics {
        self.metrics.borrow().clone()
    }

    /// The leader this node knows, with its addresses.
    pub fn leader(&self) -> Option<(NodeId, NodeAddr)> {
        let metrics = self.metrics.borrow();
        let leader = metrics.current_leader?;
        let addr = metrics.membership_config.membership().get_node(&leader)?.clone();
        Some((leader, addr))
    }

    /// Whether this node leads right now.
    pub fn is_leader(&self) -> bool {
        self.metrics.borrow().current_leader == Some(self.node_id)
    }

    /// How to reach `node`: from Raft membership, else from its node record.
    pub fn addr_of(&self, node: NodeId) -> Option<NodeAddr> {
        if let Some(addr) = self.metrics.borrow().membership_config.membership().get_node(&node) {
            return Some(addr.clone());
        }
        let record = self.catalog.system().node(node).ok()??;
        Some(NodeAddr { rpc_addr: record.rpc_addr, http_addr: record.http_addr })
    }

    /// The current layout of the local replica, `None` before the first one.
    pub fn layout(&self) -> Option<Arc<Layout>> {
        let applied = self.metrics.borrow().last_applied.map(|log_id| log_id.index);
        let mut cached = self.layout.lock();
        if cached.applied != applied || applied.is_none() {
            match self.catalog.system().layout() {
                Ok(layout) => {
                    cached.layout = layout.map(Arc::new);
                    cached.applied = applied;
                }
                Err(error) => tracing::warn!(%error, "cannot read the layout; using the cached one"),
            }
        }
        cached.layout.clone()
    }
}
