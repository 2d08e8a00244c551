//! The node's side of the `/_cluster` API: facts from Raft metrics, the
//! replicated node records and layout, and gossip's liveness; operations as
//! Raft commands that the membership loop then carries out.

use std::collections::BTreeMap;
use std::sync::Arc;

use flotilla_api::cluster::model::{ClusterState, Health, LayoutSummary, LayoutView, NodeView};
use flotilla_api::cluster::{AdminError, ClusterAdmin};
use flotilla_model::system::{self, Layout, NodeRecord, NodeState};
use flotilla_raft::{MetaClient, MetaError, WriteError};

use super::liveness::{Liveness, LivenessTable};
use super::ClusterView;

/// Implements [`ClusterAdmin`] for this node.
pub struct NodeAdmin {
    pub view: Arc<ClusterView>,
    pub meta: MetaClient,
    pub liveness: LivenessTable,
}

fn meta_error(error: MetaError) -> AdminError {
    match error {
        MetaError::Unavailable(message) => AdminError::Unavailable(message),
        MetaError::Fatal(message) => AdminError::Internal(message),
    }
}

fn internal(error: impl std::fmt::Display) -> AdminError {
    AdminError::Internal(error.to_string())
}

fn summary(layout: &Layout) -> LayoutSummary {
    LayoutSummary {
        version: layout.version,
        partitions: layout.partitions,
        replication_factor: layout.replication_factor,
        sync_state: if layout.is_syncing() { "syncing" } else { "synced" }.into(),
        created_ms: layout.created_ms,
    }
}

fn state_name(state: NodeState) -> &'static str {
    match state {
        NodeState::Active => "active",
        NodeState::Draining => "draining",
        NodeState::Removed => "removed",
    }
}

impl NodeAdmin {
    fn node_view(&self, record: &NodeRecord, layout: Option<&Layout>) -> NodeView {
        let metrics = self.view.metrics();
        let membership = metrics.membership_config.membership();
        let role = if membership.voter_ids().any(|id| id == record.id) {
            "voter"
        } else if membership.learner_ids().any(|id| id == record.id) {
            "learner"
        } else {
            "none"
        };
        let liveness = match self.liveness.of(record.id) {
            _ if record.state == NodeState::Removed => Liveness::Unknown,
            liveness => liveness,
        };
        let matched_index = metrics
            .replication
            .as_ref()
            .and_then(|replication| replication.get(&record.id).copied().flatten())
            .map(|log_id| log_id.index);
        NodeView {
            id: record.id,
            role: role.into(),
            state: state_name(record.state).into(),
            liveness: liveness.as_str().into(),
            http_addr: record.http_addr.clone(),
            rpc_addr: record.rpc_addr.clone(),
            gossip_addr: record.gossip_addr.clone(),
            zone: record.zone.clone(),
            capacity: record.capacity,
            partitions: layout.map_or(0, |layout| layout.replicas_of(record.id)),
            matched_index,
            joined_ms: record.joined_ms,
        }
    }

    async fn set_state(&self, node: u64, state: NodeState) -> Result<NodeRecord, AdminError> {
        let catalog = self.meta.read().await.map_err(meta_error)?;
        let Some(record) = catalog.system().node(node).map_err(internal)? else {
            return Err(AdminError::NotFound(format!("no node {node}")));
        };
        if record.state == NodeState::Removed {
            return Err(AdminError::Conflict(format!("node {node} was already removed")));
        }
        let others_hold_data =
            catalog.system().nodes().map_err(internal)?.iter().any(|other| other.id != node && other.holds_data());
        if !others_hold_data {
            return Err(AdminError::Conflict(format!("node {node} is the last node holding data")));
        }
        match self.meta.write(system::Command::SetNodeState { id: node, state }).await {
            Ok(_) => Ok(NodeRecord { state, ..record }),
            Err(WriteError::Rejected(rejection)) => Err(AdminError::Conflict(rejection.message)),
            Err(WriteError::Unavailable(message)) => Err(AdminError::Unavailable(message)),
            Err(WriteError::Fatal(message)) => Err(AdminError::Internal(message)),
        }
    }
}

#[async_trait::async_trait]
impl ClusterAdmin for NodeAdmin {
    async fn health(&self) -> Health {
        let metrics = self.view.metrics();
        let membership = metrics.membership_config.membership();
        let voters: Vec<u64> = membership.voter_ids().collect();
        let reachable = voters.iter().filter(|id| self.liveness.of(**id) == Liveness::Alive).count();
        let fenced = self.meta.read().await.is_ok();
        let layout_synced = self.view.layout().is_none_or(|layout| !layout.is_syncing());
        let members_alive = membership.nodes().all(|(id, _)| self.liveness.of(*id) == Liveness::Alive);
        let status = match (fenced, members_alive && layout_synced) {
            (false, _) => "red",
            (true, false) => "yellow",
            (true, true) => "green",
        };
        Health {
            status: status.into(),
            leader: metrics.current_leader,
            voters: voters.len(),
            voters_reachable: reachable,
            layout_synced,
        }
    }

    async fn state(&self) -> Result<ClusterState, AdminError> {
        let catalog = self.meta.read().await.map_err(meta_error)?;
        let metrics = self.view.metrics();
        let layout = catalog.system().layout().map_err(internal)?;
        let records: BTreeMap<u64, NodeRecord> =
            catalog.system().nodes().map_err(internal)?.into_iter().map(|node| (node.id, node)).collect();
        let nodes = records.values().map(|record| self.node_view(record, layout.as_ref())).collect();
        Ok(ClusterState {
            cluster_id: catalog.system().settings().map_err(internal)?.map(|s| s.cluster_id).unwrap_or_default(),
            node_id: self.view.node_id(),
            leader: metrics.current_leader,
            term: metrics.current_term,
            last_applied: metrics.last_applied.map(|log_id| log_id.index),
            nodes,
            layout: layout.as_ref().map(summary),
        })
    }

    async fn layout(&self) -> Result<Option<LayoutView>, AdminError> {
        let catalog = self.meta.read().await.map_err(meta_error)?;
        let Some(layout) = catalog.system().layout().map_err(internal)? else { return Ok(None) };
        let replicas = layout.nodes().into_iter().map(|node| (node, layout.replicas_of(node))).collect();
        Ok(Some(LayoutView {
            summary: summary(&layout),
            replicas,
            owners: layout.owners.clone(),
            previous: layout.previous.clone(),
        }))
    }

    async fn drain(&self, node: u64) -> Result<NodeView, AdminError> {
        let record = self.set_state(node, NodeState::Draining).await?;
        let layout = self.view.layout();
        Ok(self.node_view(&record, layout.as_deref()))
    }

    async fn remove(&self, node: u64) -> Result<(), AdminError> {
        self.set_state(node, NodeState::Removed).await.map(|_| ())
    }
}
