//! Which members answer right now, from a probe every node runs.
//!
//! Each node pings every other Raft member over the cluster service once a
//! second with a short deadline and remembers when each last answered. The
//! answer steers reads away from dead owners and is shown in
//! `/_cluster/state`; it never changes Raft membership. (SWIM gossip, which
//! spreads the same facts with fewer messages in large clusters, is the
//! planned replacement; for 3 to 5 nodes a full probe costs little.)

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use tonic::transport::Endpoint;

use flotilla_raft::network::client::endpoint;
use flotilla_raft::NodeId;

use super::ClusterView;
use crate::proto::cluster::cluster_service_client::ClusterServiceClient;
use crate::proto::cluster::PingRequest;

/// How often every member is probed.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// Deadline of one probe.
const PROBE_TIMEOUT: Duration = Duration::from_millis(800);
/// A member that has not answered for this long is unreachable.
pub const ALIVE_WITHIN: Duration = Duration::from_secs(3);

/// What a node knows about a member's liveness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    Unreachable,
    /// Not probed yet.
    Unknown,
}

impl Liveness {
    pub fn as_str(self) -> &'static str {
        match self {
            Liveness::Alive => "alive",
            Liveness::Unreachable => "unreachable",
            Liveness::Unknown => "unknown",
        }
    }
}

/// Last answers of each member, shared by clones.
#[derive(Clone, Default)]
pub struct LivenessTable {
    last_answer: Arc<Mutex<HashMap<NodeId, Option<Instant>>>>,
}

impl LivenessTable {
    /// The liveness of `node` (this node is always alive).
    pub fn of(&self, node: NodeId, me: NodeId) -> Liveness {
        if node == me {
            return Liveness::Alive;
        }
        match self.last_answer.lock().get(&node) {
            None => Liveness::Unknown,
            Some(Some(at)) if at.elapsed() <= ALIVE_WITHIN => Liveness::Alive,
            Some(_) => Liveness::Unreachable,
        }
    }

    fn record(&self, node: NodeId, answered: bool) {
        let mut table = self.last_answer.lock();
        let entry = table.entry(node).or_insert(None);
        if answered {
            *entry = Some(Instant::now());
        }
    }

    /// Probes every member once a second until `shutdown`.
    pub async fn run(self, view: Arc<ClusterView>, shutdown: CancellationToken) {
        let mut channels: HashMap<String, tonic::transport::Channel> = HashMap::new();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(PROBE_INTERVAL) => {}
                _ = shutdown.cancelled() => return,
            }
            let metrics = view.metrics();
            let members: Vec<(NodeId, String)> = metrics
                .membership_config
                .membership()
                .nodes()
                .filter(|(id, _)| **id != view.node_id())
                .map(|(id, addr)| (*id, addr.rpc_addr.clone()))
                .collect();
            let probes = members.into_iter().map(|(node, addr)| {
                let channel = channels.entry(addr.clone()).or_insert_with(|| lazy_channel(&addr)).clone();
                let me = view.node_id();
                async move {
                    let mut request = tonic::Request::new(PingRequest { from: me });
                    request.set_timeout(PROBE_TIMEOUT);
                    let answered = ClusterServiceClient::new(channel).ping(request).await.is_ok();
                    (node, answered)
                }
            });
            for (node, answered) in futures::future::join_all(probes).await {
                self.record(node, answered);
            }
        }
    }
}

fn lazy_channel(addr: &str) -> tonic::transport::Channel {
    match endpoint(addr) {
        Ok(endpoint) => endpoint.connect_timeout(PROBE_TIMEOUT).connect_lazy(),
        // An address that is not a URI never answers; probe a placeholder that fails.
        Err(_) => Endpoint::from_static("http://0.0.0.0:1").connect_lazy(),
    }
}
