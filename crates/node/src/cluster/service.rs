//! The gRPC `ClusterService`: admits nodes, and tells its wall clock (for
//! cluster time, [`super::clock`]).
//!
//! Any member accepts a `Join`; a follower hands it to the leader (one hop),
//! which checks it and records the node, then adds it to Raft as a learner.
//! Promotion to voter is the membership loop's decision, once the learner has
//! caught up.
//!
//! A join is refused, never retried by the joiner, when the node belongs to
//! another cluster, when its id was removed, or when its id is already a
//! member at other addresses. A node without a leader answers `UNAVAILABLE`,
//! or [`NO_CLUSTER`] when it is in no cluster at all
//! (what `bootstrap_if_first` waits to hear from every listed node).

use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};

use flotilla_model::system::{self, NodeRecord, NodeState};
use flotilla_raft::client::now_ms;
use flotilla_raft::network::client::endpoint;
use flotilla_raft::{MetaClient, MetaError, NodeAddr, WriteError};

use super::join::NO_CLUSTER;
use super::ClusterView;
use crate::proto::cluster::cluster_service_client::ClusterServiceClient;
use crate::proto::cluster::cluster_service_server::{ClusterService, ClusterServiceServer};
use crate::proto::cluster::{ClockReply, ClockRequest, JoinReply, JoinRequest};

/// Deadline of a join handed from a follower to the leader.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// The cluster service of this node.
pub fn cluster_service(view: Arc<ClusterView>, meta: MetaClient) -> ClusterServiceServer<ClusterRpc> {
    ClusterServiceServer::new(ClusterRpc { view, meta })
}

/// Serves `ClusterService` with the local Raft.
pub struct ClusterRpc {
    view: Arc<ClusterView>,
    meta: MetaClient,
}

#[tonic::async_trait]
impl ClusterService for ClusterRpc {
    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<JoinReply>, Status> {
        let request = request.into_inner();
        if request.node_id == 0 {
            return Err(Status::invalid_argument("node id 0 is reserved"));
        }
        match self.view.leader() {
            Some((leader, _)) if leader == self.view.node_id() => self.admit(request).await.map(Response::new),
            Some((_, addr)) => forward_join(&addr.rpc_addr, request).await.map(Response::new),
            None if !self.view.raft().is_initialized().await.map_err(internal)? => {
                Err(Status::new(NO_CLUSTER, format!("node {} is in no cluster yet; retry", self.view.node_id())))
            }
            None => Err(Status::unavailable("no leader yet; retry")),
        }
    }

    async fn clock(&self, _request: Request<ClockRequest>) -> Result<Response<ClockReply>, Status> {
        Ok(Response::new(ClockReply { wall_ms: flotilla_raft::clock::wall_ms() }))
    }
}

impl ClusterRpc {
    /// On the leader: check the request, record the node, add it as a learner.
    async fn admit(&self, request: JoinRequest) -> Result<JoinReply, Status> {
        let catalog = self.meta.read().await.map_err(meta_status)?;
        let cluster_id = catalog.system().settings().map_err(internal)?.map(|s| s.cluster_id).unwrap_or_default();
        if !request.cluster_id.is_empty() && request.cluster_id != cluster_id {
            return Err(Status::failed_precondition(format!(
                "node {} belongs to cluster {}, not to cluster {cluster_id}; start it with an empty data directory",
                request.node_id, request.cluster_id
            )));
        }
        let existing = catalog.system().node(request.node_id).map_err(internal)?;
        let address = NodeAddr { rpc_addr: request.rpc_addr.clone(), http_addr: request.http_addr.clone() };
        if let Some(existing) = &existing {
            if existing.state == NodeState::Removed {
                return Err(Status::failed_precondition(format!(
                    "node id {} was removed from this cluster; join with a new id and an empty data directory",
                    request.node_id
                )));
            }
        }
        let membership = self.view.metrics().membership_config.membership().clone();
        if let Some(member) = membership.get_node(&request.node_id) {
            if *member != address {
                return Err(Status::failed_precondition(format!(
                    "node id {} is already a member at {member}; choose another id",
                    request.node_id
                )));
            }
        }
        let record = NodeRecord {
            id: request.node_id,
            http_addr: request.http_addr,
            rpc_addr: request.rpc_addr,
            gossip_addr: Some(request.gossip_addr).filter(|addr| !addr.is_empty()),
            zone: Some(request.zone).filter(|zone| !zone.is_empty()),
            capacity: request.capacity,
            state: existing.as_ref().map_or(NodeState::Active, |node| node.state),
            joined_ms: existing.as_ref().map_or_else(now_ms, |node| node.joined_ms),
            // The node reports its own version once it serves (register_node); until then it holds the gate.
            model_version: existing.as_ref().map_or(0, |node| node.model_version),
        };
        if existing.as_ref() != Some(&record) {
            match self.meta.write(system::Command::PutNode(record)).await {
                Ok(_) => {}
                Err(WriteError::Rejected(rejection)) => return Err(Status::failed_precondition(rejection.message)),
                Err(WriteError::Unavailable(message)) => return Err(Status::unavailable(message)),
                Err(WriteError::Fatal(message)) => return Err(Status::internal(message)),
            }
        }
        if membership.get_node(&request.node_id).is_none() {
            self.view
                .raft()
                .add_learner(request.node_id, address, false)
                .await
                .map_err(|error| Status::unavailable(format!("adding the learner: {error}")))?;
            tracing::info!(node_id = request.node_id, "admitted a node as a learner");
        }
        Ok(JoinReply { cluster_id, leader_id: self.view.node_id() })
    }
}

/// Hands a join to the leader.
async fn forward_join(leader_rpc: &str, request: JoinRequest) -> Result<JoinReply, Status> {
    let endpoint = endpoint(leader_rpc)
        .map_err(|error| Status::internal(format!("leader address {leader_rpc}: {error}")))?
        .timeout(FORWARD_TIMEOUT);
    let channel =
        endpoint.connect().await.map_err(|error| Status::unavailable(format!("leader unreachable: {error}")))?;
    let reply = ClusterServiceClient::new(channel).join(request).await.map_err(relayed)?;
    Ok(reply.into_inner())
}

/// The leader's refusal as this node passes it on. `NO_CLUSTER` speaks for
/// the node that answers, and this node is in a cluster: whoever now answers
/// at the leader's address is not that leader (it restarted empty there, and
/// may be the very node asking to join), so the joiner must retry rather
/// than count this node as empty.
fn relayed(status: Status) -> Status {
    if status.code() == NO_CLUSTER {
        Status::unavailable(format!("the leader's address answers for no cluster ({}); retry", status.message()))
    } else {
        status
    }
}

fn meta_status(error: MetaError) -> Status {
    match error {
        MetaError::Unavailable(message) => Status::unavailable(message),
        MetaError::Fatal(message) => Status::internal(message),
    }
}

fn internal(error: impl std::fmt::Display) -> Status {
    Status::internal(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_never_passes_on_an_answer_of_no_cluster() {
        // A joiner that restarted empty at the leader's old address is asked
        // by a follower that still takes it for the leader: the follower must
        // not answer "no cluster" on its behalf.
        let relayed_empty = relayed(Status::new(NO_CLUSTER, "node 1 is in no cluster yet; retry"));
        assert_eq!(relayed_empty.code(), tonic::Code::Unavailable);
        assert!(relayed_empty.message().contains("node 1 is in no cluster"), "{}", relayed_empty.message());
        let refused = relayed(Status::failed_precondition("node id 4 was removed"));
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "refusals pass unchanged");
        assert_eq!(relayed(Status::unavailable("no leader")).code(), tonic::Code::Unavailable);
    }
}
