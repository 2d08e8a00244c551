//! Joining an existing cluster (`flotilla serve --join ADDR[,ADDR]`).
//!
//! A new node asks the listed members, in turn, to admit it until one does;
//! members hand the request to the leader. A node that already holds Raft
//! state asks too, so that a data directory from another cluster (or a
//! removed node) is refused at start instead of quietly running apart; if no
//! member answers it starts anyway, since its peers may be restarting too.

use std::time::{Duration, Instant};

use anyhow::bail;
use tokio_util::sync::CancellationToken;
use tonic::Code;

use flotilla_raft::network::client::endpoint;

use crate::config::Config;
use crate::proto::cluster::cluster_service_client::ClusterServiceClient;
use crate::proto::cluster::JoinRequest;

/// Deadline of one join attempt (the leader may be adding us while busy).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);
/// Pause after every member was tried, doubling up to the maximum.
const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long a node that already has state keeps trying before it starts anyway.
const KNOWN_MEMBER_PATIENCE: Duration = Duration::from_secs(5);

/// The outcome of asking to join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joined {
    /// A member admitted the node into the cluster with this id.
    Admitted { cluster_id: String, leader_id: u64 },
    /// No member answered in time; the node already has state and starts from it.
    NoAnswer,
}

/// Asks the members in `config.join` to admit this node. `local_cluster_id`
/// is the cluster of the node's existing state, if any; a node without state
/// tries until admitted or shut down.
pub async fn join(
    config: &Config,
    local_cluster_id: Option<String>,
    shutdown: &CancellationToken,
) -> anyhow::Result<Joined> {
    let has_state = local_cluster_id.is_some();
    let request = JoinRequest {
        node_id: config.node_id,
        rpc_addr: config.advertised_rpc(),
        http_addr: config.advertised_http(),
        gossip_addr: config.advertised_gossip(),
        zone: config.zone.clone().unwrap_or_default(),
        capacity: config.capacity,
        cluster_id: local_cluster_id.unwrap_or_default(),
    };
    let started = Instant::now();
    let mut backoff = BACKOFF_START;
    loop {
        for member in &config.join {
            match ask(member, request.clone()).await {
                Ok(reply) => {
                    tracing::info!(%member, cluster_id = %reply.cluster_id, leader = reply.leader_id, "joined the cluster");
                    return Ok(Joined::Admitted { cluster_id: reply.cluster_id, leader_id: reply.leader_id });
                }
                Err(status) if matches!(status.code(), Code::FailedPrecondition | Code::InvalidArgument) => {
                    bail!("{member} refused to admit node {}: {}", config.node_id, status.message());
                }
                Err(status) => tracing::info!(%member, error = %status.message(), "join attempt failed; retrying"),
            }
        }
        if has_state && started.elapsed() > KNOWN_MEMBER_PATIENCE {
            tracing::warn!("no member answered; starting from the existing state");
            return Ok(Joined::NoAnswer);
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.cancelled() => bail!("shut down while joining"),
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

async fn ask(member: &str, request: JoinRequest) -> Result<crate::proto::cluster::JoinReply, tonic::Status> {
    let endpoint = endpoint(member)
        .map_err(|error| tonic::Status::invalid_argument(format!("bad member address {member}: {error}")))?
        .timeout(ATTEMPT_TIMEOUT);
    let channel = endpoint.connect().await.map_err(|error| tonic::Status::unavailable(error.to_string()))?;
    Ok(ClusterServiceClient::new(channel).join(request).await?.into_inner())
}
