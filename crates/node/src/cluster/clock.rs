//! Keeps this node's cluster time ([`flotilla_raft::clock`]) on the voters'
//! median clock: every [`PERIOD`] it asks each voter for its raw wall clock
//! (`ClusterService.Clock`), corrects each answer by half the round trip,
//! and anchors cluster time at the median of those offsets and its own (0).
//! Answers slower than half a second are not used; without answers from
//! a majority of the voters the anchor stays where it was, carried forward
//! by the monotonic clock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use flotilla_raft::clock;
use flotilla_raft::network::client::shared_channel;

use super::ClusterView;
use crate::proto::cluster::cluster_service_client::ClusterServiceClient;
use crate::proto::cluster::ClockRequest;

/// How often the clocks are compared.
pub const PERIOD: Duration = Duration::from_secs(2);
/// A reading whose round trip took longer says too little about the peer's clock.
const MAX_ROUND_TRIP: Duration = Duration::from_millis(500);
/// An offset from this node's own clock worth a log line.
const NOTEWORTHY_MS: i64 = 1_000;

/// Compares clocks until `shutdown`.
pub async fn run(view: Arc<ClusterView>, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(PERIOD);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => sync(&view).await,
        }
    }
}

/// One comparison; anchors cluster time if a majority of the voters answered.
pub async fn sync(view: &ClusterView) {
    let membership = view.metrics().membership_config.membership().clone();
    let voters: Vec<_> = membership.voter_ids().collect();
    let mut offsets = Vec::with_capacity(voters.len());
    if voters.contains(&view.node_id()) {
        offsets.push(0);
    }
    let readings = voters
        .iter()
        .filter(|voter| **voter != view.node_id())
        .filter_map(|voter| membership.get_node(voter).map(|addr| addr.rpc_addr.clone()))
        .map(|addr| async move { read_peer(&addr).await });
    offsets.extend(futures::future::join_all(readings).await.into_iter().flatten());
    let Some(offset) = clock::median_offset(&offsets, voters.len()) else { return };
    let before = clock::offset_ms();
    clock::anchor_at_offset(offset);
    if (offset - before).abs() >= NOTEWORTHY_MS {
        tracing::warn!(
            offset_ms = offset,
            previous_offset_ms = before,
            "this node's wall clock differs from the voters' median; cluster time follows the median (check NTP)"
        );
    }
}

/// A peer's clock offset from this node's, if it answered in time.
async fn read_peer(addr: &str) -> Option<i64> {
    let mut client = ClusterServiceClient::new(shared_channel(addr).ok()?);
    let mut request = tonic::Request::new(ClockRequest {});
    request.set_timeout(MAX_ROUND_TRIP);
    let started = Instant::now();
    let sent_ms = clock::wall_ms();
    let reply = client.clock(request).await.ok()?.into_inner();
    let received_ms = clock::wall_ms();
    if started.elapsed() > MAX_ROUND_TRIP {
        return None;
    }
    Some(clock::peer_offset(sent_ms, reply.wall_ms, received_ms))
}
