//! Joining an existing cluster (`flotilla serve --join ADDR[,ADDR]`).
//!
//! A new node asks the listed members, in turn, to admit it until one does;
//! members hand the request to the leader. A node that already holds Raft
//! state asks too, so that a data directory from another cluster (or a
//! removed node) is refused at start instead of quietly running apart; if no
//! member answers it starts anyway, since its peers may be restarting too.
//!
//! The node's own advertised RPC address may be in the list (every pod of a
//! StatefulSet gets the same list): it is skipped. A node without state whose
//! list names only itself can never be admitted, so it stops with an error.
//!
//! With `bootstrap_if_first`, the node listed first creates a new cluster
//! instead, when it has no Raft state and every other listed node answered,
//! in the same round, that it is up and in no cluster ([`NO_CLUSTER`]). A
//! member of a cluster without a leader, a node that does not answer and an
//! older node all block the bootstrap, so a node that lost its data while its
//! peers were away never starts a second cluster beside theirs; it keeps
//! asking, and is admitted once their cluster has a leader again. Only a
//! node speaking for itself answers `NO_CLUSTER`: a member that hands the
//! join to a leader address where an empty node now answers (this very node,
//! restarted empty) passes that on as `UNAVAILABLE`.

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
/// The code of a join refused because the asked node is in no cluster yet
/// (it is waiting to be admitted, or to create the cluster itself).
pub const NO_CLUSTER: Code = Code::NotFound;

/// The outcome of asking to join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joined {
    /// A member admitted the node into the cluster with this id.
    Admitted { cluster_id: String, leader_id: u64 },
    /// No member answered in time; the node already has state and starts from it.
    NoAnswer,
    /// `bootstrap_if_first`: this node is listed first, has no state, and every
    /// other listed node is up and in no cluster. It creates the cluster.
    Bootstrap,
}

/// What one listed node answered in a round of join attempts (admissions and
/// refusals end the round).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// It is up and in no cluster yet.
    NoCluster,
    /// It did not answer, or it is in a cluster that cannot admit anyone now.
    Unavailable,
}

/// Whether this node creates a new cluster rather than keep asking: only the
/// node that may (`bootstrap_if_first` and listed first), only without Raft
/// state, and only when every other listed node said this round that it is up
/// and in no cluster. With no other node listed, the first node creates it at once.
pub fn should_bootstrap(first: bool, has_state: bool, others: &[Probe]) -> bool {
    first && !has_state && others.iter().all(|probe| *probe == Probe::NoCluster)
}

/// Asks the members in `config.join` to admit this node. `local_cluster_id`
/// is the cluster of the node's existing state, if any; a node without state
/// tries until admitted, until it may bootstrap, or until shut down.
pub async fn join(
    config: &Config,
    local_cluster_id: Option<String>,
    shutdown: &CancellationToken,
) -> anyhow::Result<Joined> {
    let has_state = local_cluster_id.is_some();
    let first = config.bootstrap_if_first && config.is_first_in_join();
    let members = config.join_peers();
    if members.is_empty() {
        if has_state {
            return Ok(Joined::NoAnswer);
        }
        if first {
            tracing::info!("this node is the only one listed in join; creating a new cluster");
            return Ok(Joined::Bootstrap);
        }
        bail!(
            "join names only this node ({}), which has no state: list the other nodes' RPC addresses, \
             or set bootstrap_if_first on the node listed first",
            config.advertised_rpc()
        );
    }
    if config.bootstrap_if_first && !first && !has_state {
        tracing::info!(
            first = config.join.first().map(String::as_str).unwrap_or_default(),
            advertise_rpc = %config.advertised_rpc(),
            "bootstrap_if_first: this node is not listed first in join, so it waits to be admitted"
        );
    }
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
        let mut probes = Vec::with_capacity(members.len());
        for member in &members {
            match ask(member, request.clone()).await {
                Ok(reply) => {
                    tracing::info!(%member, cluster_id = %reply.cluster_id, leader = reply.leader_id, "joined the cluster");
                    return Ok(Joined::Admitted { cluster_id: reply.cluster_id, leader_id: reply.leader_id });
                }
                Err(status) if matches!(status.code(), Code::FailedPrecondition | Code::InvalidArgument) => {
                    bail!("{member} refused to admit node {}: {}", config.node_id, status.message());
                }
                Err(status) if status.code() == NO_CLUSTER => {
                    probes.push(Probe::NoCluster);
                    tracing::info!(%member, "that node is in no cluster yet; retrying");
                }
                Err(status) => {
                    probes.push(Probe::Unavailable);
                    tracing::info!(%member, error = %status.message(), "join attempt failed; retrying");
                }
            }
        }
        if should_bootstrap(first, has_state, &probes) {
            tracing::info!(peers = ?members, "every other node in join is up and in no cluster; creating a new cluster");
            return Ok(Joined::Bootstrap);
        }
        if first && !has_state {
            let waiting: Vec<&String> =
                members.iter().zip(&probes).filter(|(_, probe)| **probe != Probe::NoCluster).map(|(m, _)| m).collect();
            tracing::info!(
                ?waiting,
                "bootstrap_if_first: a new cluster is created once every node in join answers that it is in no cluster"
            );
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

#[cfg(test)]
mod tests {
    use super::*;
    use Probe::{NoCluster, Unavailable};

    #[test]
    fn only_the_first_node_without_state_bootstraps_and_only_when_every_peer_is_empty() {
        // The StatefulSet's first start: pods 1 and 2 are up and waiting.
        assert!(should_bootstrap(true, false, &[NoCluster, NoCluster]));
        // A peer not up yet, or a member of a cluster without a leader (the
        // first pod lost its volume while the others restart): wait.
        assert!(!should_bootstrap(true, false, &[NoCluster, Unavailable]));
        assert!(!should_bootstrap(true, false, &[Unavailable, Unavailable]));
        // A node with state never creates a cluster; nor does any node but the first.
        assert!(!should_bootstrap(true, true, &[NoCluster, NoCluster]));
        assert!(!should_bootstrap(false, false, &[NoCluster, NoCluster]));
        // The first node alone in its list (one replica) creates it at once.
        assert!(should_bootstrap(true, false, &[]));
        assert!(!should_bootstrap(false, false, &[]));
    }

    fn pod(ordinal: u8, bootstrap_if_first: bool, join: &[u8]) -> Config {
        let address = |i: u8| format!("127.0.0.1:{}", 1 + i as u16);
        Config {
            advertise_rpc: Some(address(ordinal)),
            join: join.iter().map(|i| address(*i)).collect(),
            bootstrap_if_first,
            ..Config::default()
        }
    }

    #[tokio::test]
    async fn a_join_list_of_only_this_node_bootstraps_or_fails_but_never_hangs() {
        let shutdown = CancellationToken::new();
        let alone = pod(0, true, &[0]);
        assert_eq!(join(&alone, None, &shutdown).await.unwrap(), Joined::Bootstrap);
        let error = join(&pod(0, false, &[0]), None, &shutdown).await.unwrap_err().to_string();
        assert!(error.contains("names only this node") && error.contains("bootstrap_if_first"), "{error}");
        // A node with state starts from it, as after no answer.
        assert_eq!(join(&pod(0, false, &[0]), Some("c".into()), &shutdown).await.unwrap(), Joined::NoAnswer);
        assert_eq!(join(&alone, Some("c".into()), &shutdown).await.unwrap(), Joined::NoAnswer);
    }

    #[tokio::test]
    async fn the_first_node_waits_while_a_listed_node_does_not_answer() {
        // Ports 2 and 3 of 127.0.0.1 refuse connections: nobody is up.
        let shutdown = CancellationToken::new();
        let first = pod(0, true, &[0, 1, 2]);
        let waited = tokio::time::timeout(Duration::from_secs(2), join(&first, None, &shutdown)).await;
        assert!(waited.is_err(), "it must keep asking, not bootstrap: {waited:?}");
        shutdown.cancel();
        let error = join(&first, None, &shutdown).await.unwrap_err();
        assert!(error.to_string().contains("shut down"), "{error}");
    }
}
