//! The records of the cluster's shape: its settings, its nodes and the
//! partition layout that places blobs on them.
//!
//! Raft membership says who votes and who receives the log; these records say
//! what the rest of the system needs to know about each node (zone, capacity,
//! whether it is being drained or was removed) and which nodes own each
//! partition of the blob space. Computing a layout is the node crate's job
//! (placement); this domain only stores it and checks that versions advance
//! one at a time.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::NodeId;

/// Cluster-wide settings, one record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSettings {
    /// Random id fixed when the cluster is created; nodes of other clusters are refused.
    pub cluster_id: String,
    /// Secret (hex) that signs registry bearer tokens; the same on every node.
    pub token_secret: String,
}

/// Where a node is in its life in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Serving and owning partitions by its capacity.
    Active,
    /// Being emptied: it owns no partitions in the next layout; removed once its data moved.
    Draining,
    /// Gone for good; its id can never join again.
    Removed,
}

/// What the cluster knows about one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub id: NodeId,
    /// HTTP address of the REST surfaces.
    pub http_addr: String,
    /// gRPC address of Raft and the inter-node services.
    pub rpc_addr: String,
    /// UDP address of SWIM gossip (absent in records written before gossip).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gossip_addr: Option<String>,
    /// Failure zone, when the operator set one.
    pub zone: Option<String>,
    /// Capacity weight for placement (bytes of disk offered).
    pub capacity: u64,
    pub state: NodeState,
    /// When the node first joined (ms since the Unix epoch).
    pub joined_ms: u64,
    /// The newest model version the node's binary supports (0: a node of
    /// 0.1.0, which predates the gate).
    #[serde(default)]
    pub model_version: u32,
}

/// The model version the cluster runs: commands that need a newer one are
/// refused until every node supports it and the leader raises this.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelVersion {
    pub active: u32,
}

impl NodeRecord {
    /// Whether placement may give this node partitions.
    pub fn holds_data(&self) -> bool {
        self.state == NodeState::Active && self.capacity > 0
    }
}

/// Which nodes own each partition of the blob space, versioned.
///
/// While `previous` is set the layout is being synced: writes go to the owners
/// of both, reads try the new owners first, then the old ones. Marking the
/// layout synced drops `previous`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// Starts at 1 and grows by one with each change.
    pub version: u64,
    /// Number of partitions (a power of two, fixed when the cluster is created).
    pub partitions: u32,
    /// Copies wanted per blob (R is this, or fewer when fewer nodes hold data).
    pub replication_factor: u32,
    /// `owners[p]` lists the owners of partition `p`, first owner first.
    pub owners: Vec<Vec<NodeId>>,
    /// The owners before this version, until the data has moved.
    pub previous: Option<Vec<Vec<NodeId>>>,
    /// When this version was computed (ms since the Unix epoch).
    pub created_ms: u64,
}

impl Layout {
    /// Whether every partition has owners and the version is in range; what `apply` checks.
    pub fn is_well_formed(&self) -> bool {
        self.version >= 1
            && self.partitions.is_power_of_two()
            && self.owners.len() == self.partitions as usize
            && self.previous.as_ref().is_none_or(|previous| previous.len() == self.partitions as usize)
            && self.owners.iter().all(|owners| !owners.is_empty() && distinct(owners))
    }

    /// Whether data is still moving to the owners of this version.
    pub fn is_syncing(&self) -> bool {
        self.previous.is_some()
    }

    /// The owners of partition `p` in this version.
    pub fn owners_of(&self, p: u32) -> &[NodeId] {
        self.owners.get(p as usize).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Where a new copy of a blob in partition `p` must go: new owners, then
    /// old owners still syncing.
    pub fn write_owners(&self, p: u32) -> Vec<NodeId> {
        self.read_owners(p)
    }

    /// Where a blob in partition `p` may be found, in the order to try.
    pub fn read_owners(&self, p: u32) -> Vec<NodeId> {
        let mut owners = self.owners_of(p).to_vec();
        if let Some(previous) = self.previous.as_ref().and_then(|previous| previous.get(p as usize)) {
            for node in previous {
                if !owners.contains(node) {
                    owners.push(*node);
                }
            }
        }
        owners
    }

    /// Every node that owns at least one partition in this version.
    pub fn nodes(&self) -> BTreeSet<NodeId> {
        self.owners.iter().flatten().copied().collect()
    }

    /// Replicas (partition, owner) held by `node` in this version.
    pub fn replicas_of(&self, node: NodeId) -> usize {
        self.owners.iter().filter(|owners| owners.contains(&node)).count()
    }
}

fn distinct(nodes: &[NodeId]) -> bool {
    nodes.iter().collect::<BTreeSet<_>>().len() == nodes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(owners: Vec<Vec<NodeId>>, previous: Option<Vec<Vec<NodeId>>>) -> Layout {
        Layout { version: 2, partitions: owners.len() as u32, replication_factor: 2, owners, previous, created_ms: 0 }
    }

    #[test]
    fn reads_try_new_owners_then_old_ones() {
        let layout = layout(vec![vec![1, 2], vec![2, 3]], Some(vec![vec![3, 1], vec![2, 3]]));
        assert_eq!(layout.read_owners(0), vec![1, 2, 3]);
        assert_eq!(layout.write_owners(1), vec![2, 3]);
        assert!(layout.is_syncing());
        assert!(layout.is_well_formed());
    }

    #[test]
    fn malformed_layouts_are_recognised() {
        assert!(!layout(vec![vec![1, 1], vec![2]], None).is_well_formed());
        assert!(!layout(vec![vec![1], vec![]], None).is_well_formed());
        assert!(!layout(vec![vec![1], vec![2], vec![3]], None).is_well_formed());
        assert!(!layout(vec![vec![1], vec![2]], Some(vec![vec![1]])).is_well_formed());
    }
}
