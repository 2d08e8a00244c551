//! Which members are alive right now, from SWIM gossip over the Raft members.
//!
//! [`LivenessTable`] wraps the node's [`Gossip`] endpoint and keeps
//! its roster equal to the Raft membership: once a second the roster task
//! reads the members and the gossip addresses from their node records and
//! hands them to gossip. Gossip then says who answers (alive, suspect, down).
//! The answer steers blob reads and writes away from dead nodes and is shown
//! in `/_cluster/state`; it never changes Raft membership.
//!
//! Datagrams are authenticated with a key derived from the cluster's
//! replicated secret, so a node that is not a member (or a stray packet)
//! cannot take part.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use flotilla_raft::NodeId;

pub use super::gossip::Liveness;
use super::gossip::{Gossip, GossipConfig};
use super::ClusterView;

/// How often the gossip roster is compared with Raft membership.
const ROSTER_INTERVAL: Duration = Duration::from_secs(1);

/// The liveness of every member, as gossip sees it; cheap to clone.
#[derive(Clone)]
pub struct LivenessTable {
    gossip: Gossip,
}

impl LivenessTable {
    /// Starts gossip on `bind`, advertised as `advertise` (`host:port`; a
    /// name is resolved once here), keyed by `secret`.
    pub async fn start(
        node_id: NodeId,
        bind: SocketAddr,
        advertise: &str,
        secret: &[u8],
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let advertise = resolve(advertise).await.with_context(|| format!("resolving gossip address {advertise}"))?;
        let config = GossipConfig::new(node_id, bind, advertise, secret.to_vec());
        let gossip = Gossip::start(config, shutdown).await.with_context(|| format!("starting gossip on {bind}/udp"))?;
        Ok(LivenessTable { gossip })
    }

    /// The liveness of `node` (this node is always alive).
    pub fn of(&self, node: NodeId) -> Liveness {
        self.gossip.liveness(node)
    }

    /// Datagrams dropped for a bad authentication tag or size.
    pub fn rejected_packets(&self) -> u64 {
        self.gossip.rejected_packets()
    }

    /// Keeps the gossip roster equal to the Raft members until `shutdown`.
    pub async fn run_roster(self, view: Arc<ClusterView>, shutdown: CancellationToken) {
        loop {
            let roster = roster(&view).await;
            self.gossip.set_members(&roster);
            tokio::select! {
                _ = tokio::time::sleep(ROSTER_INTERVAL) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

/// The Raft members with a known gossip address (other nodes than this one).
async fn roster(view: &ClusterView) -> Vec<(NodeId, SocketAddr)> {
    let metrics = view.metrics();
    let members: Vec<NodeId> = metrics.membership_config.membership().nodes().map(|(id, _)| *id).collect();
    let mut roster = Vec::with_capacity(members.len());
    for id in members.into_iter().filter(|id| *id != view.node_id()) {
        let Ok(Some(record)) = view.catalog().system().node(id) else { continue };
        let Some(addr) = record.gossip_addr else { continue };
        match resolve(&addr).await {
            Ok(addr) => roster.push((id, addr)),
            Err(error) => tracing::debug!(node = id, %addr, %error, "cannot resolve a gossip address"),
        }
    }
    roster
}

/// `host:port` as a socket address: parsed when literal, else looked up.
async fn resolve(addr: &str) -> std::io::Result<SocketAddr> {
    if let Ok(parsed) = addr.parse() {
        return Ok(parsed);
    }
    tokio::net::lookup_host(addr)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address found"))
}
