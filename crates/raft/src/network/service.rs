//! Inbound RPC handlers: each decodes its payload, calls the local Raft and
//! encodes the outcome — openraft's own `Result` for Raft RPCs (the caller
//! rebuilds `RemoteError` from it), `Result<_, ForwardError>` for the rest.

use std::pin::Pin;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};

use openraft::error::{CheckIsLeaderError, ClientWriteError, ForwardToLeader, RaftError};
use tokio_util::sync::CancellationToken;
use tonic::{Request as GrpcRequest, Response as GrpcResponse, Status, Streaming};

use super::cluster_id;
use super::proto::raft_service_server::{RaftService, RaftServiceServer};
use super::proto::{Empty, Payload};
use super::{decode, encode, ForwardError, MAX_MESSAGE_BYTES};
use crate::client::{MetaClient, MetaError};
use crate::election::{self, LeaderContact};
use crate::lease;
use crate::types::{NodeAddr, NodeId, Raft};
use flotilla_model::{Request, Response};

/// The Raft gRPC service of this node, ready for `tonic::transport::Server::add_service`;
/// its long-lived streams end at `shutdown`.
pub fn raft_service(meta: MetaClient, shutdown: CancellationToken) -> RaftServiceServer<RaftRpc> {
    let votes_held_until = Instant::now() + lease::startup_hold(meta.raft());
    let service = RaftRpc { meta, leader_contact: LeaderContact::default(), votes_held_until, shutdown };
    RaftServiceServer::new(service)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// Adapts tonic to the local Raft handle.
pub struct RaftRpc {
    /// The local Raft ([`MetaClient::raft`]); read-index requests join its
    /// shared rounds.
    meta: MetaClient,
    /// When a leader last sent this node entries or a heartbeat.
    leader_contact: LeaderContact,
    /// Until when this node, just started, keeps the refusal to vote it may
    /// have promised a leader before it stopped ([`lease::startup_hold`]).
    votes_held_until: Instant,
    /// The server's shutdown: a graceful stop waits for every stream to end,
    /// and followers keep their read-index streams open for as long as they can.
    shutdown: CancellationToken,
}

impl RaftRpc {
    fn holding_votes(&self) -> bool {
        Instant::now() < self.votes_held_until
    }
}

fn reply<T: serde::Serialize>(value: &T) -> Result<GrpcResponse<Payload>, Status> {
    Ok(GrpcResponse::new(Payload { data: encode(value)? }))
}

fn not_leader(forward: ForwardToLeader<NodeId, NodeAddr>) -> ForwardError {
    ForwardError::NotLeader { leader: forward.leader_id.zip(forward.leader_node) }
}

/// Commits a forwarded write if this node leads.
async fn handle_forward(raft: &Raft, request: Request) -> Result<Response, ForwardError> {
    match raft.client_write(request).await {
        Ok(written) => Ok(written.data),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => Err(not_leader(forward)),
        Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(error))) => {
            Err(ForwardError::Fatal(error.to_string()))
        }
        // This node stops for good (and exits to be restarted); the caller
        // retries with whoever leads next.
        Err(RaftError::Fatal(fatal)) => Err(ForwardError::Unavailable(format!("the leader's raft stopped: {fatal}"))),
    }
}

/// The leader's read index: from its lease while that holds
/// ([`crate::lease`]), else after a heartbeat round confirmed its leadership.
/// Unlike `ensure_linearizable` it does not wait for the leader's own apply:
/// the caller waits for its own replica. The round is the one this node's
/// own readers share ([`MetaClient`]), so concurrent requests from followers
/// and local reads cost one heartbeat exchange together; it starts after the
/// request arrived, so it covers every write acknowledged before.
async fn handle_read_index(meta: &MetaClient) -> Result<Option<u64>, ForwardError> {
    let raft = meta.raft();
    let leads = {
        let metrics = raft.metrics();
        let metrics = metrics.borrow();
        metrics.current_leader == Some(metrics.id)
    };
    if leads {
        if let Some(index) = meta.lease_read_index() {
            return Ok(Some(index));
        }
        return meta.next_read_index().await.map_err(|error| match error {
            // Either way the caller asks again, here or at a new leader.
            MetaError::Unavailable(message) | MetaError::Fatal(message) => ForwardError::Unavailable(message),
        });
    }
    // Not the leader: openraft names the one it knows, without a round.
    match raft.get_read_log_id().await {
        Ok((read_log_id, _applied)) => Ok(read_log_id.map(|log_id| log_id.index)),
        Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(forward))) => Err(not_leader(forward)),
        Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(error))) => {
            Err(ForwardError::Unavailable(error.to_string()))
        }
        Err(RaftError::Fatal(fatal)) => Err(ForwardError::Unavailable(format!("the leader's raft stopped: {fatal}"))),
    }
}

#[tonic::async_trait]
impl RaftService for RaftRpc {
    async fn append_entries(&self, request: GrpcRequest<Payload>) -> Result<GrpcResponse<Payload>, Status> {
        cluster_id::check(&request)?;
        let rpc = decode(&request.into_inner().data)?;
        self.leader_contact.touch();
        reply(&self.meta.raft().append_entries(rpc).await)
    }

    async fn vote(&self, request: GrpcRequest<Payload>) -> Result<GrpcResponse<Payload>, Status> {
        cluster_id::check(&request)?;
        let rpc = decode(&request.into_inner().data)?;
        // Answered only once the hold is over (the candidate's call may time
        // out first, which it takes as no vote).
        tokio::time::sleep_until(self.votes_held_until.into()).await;
        reply(&self.meta.raft().vote(rpc).await)
    }

    async fn install_snapshot(&self, request: GrpcRequest<Payload>) -> Result<GrpcResponse<Payload>, Status> {
        cluster_id::check(&request)?;
        let rpc = decode(&request.into_inner().data)?;
        reply(&self.meta.raft().install_snapshot(rpc).await)
    }

    async fn forward(&self, request: GrpcRequest<Payload>) -> Result<GrpcResponse<Payload>, Status> {
        cluster_id::check(&request)?;
        let client_request: Request = decode(&request.into_inner().data)?;
        reply(&handle_forward(self.meta.raft(), client_request).await)
    }

    async fn read_index(&self, request: GrpcRequest<Empty>) -> Result<GrpcResponse<Payload>, Status> {
        cluster_id::check(&request)?;
        reply(&handle_read_index(&self.meta).await)
    }

    type ReadIndexStreamStream = Pin<Box<dyn Stream<Item = Result<Payload, Status>> + Send>>;

    async fn read_index_stream(
        &self,
        request: GrpcRequest<Streaming<Empty>>,
    ) -> Result<GrpcResponse<Self::ReadIndexStreamStream>, Status> {
        cluster_id::check(&request)?;
        let meta = self.meta.clone();
        // One answer per question, in order; the stream ends with the caller's,
        // or when this server stops (the follower reopens one to the next leader).
        let answers = request
            .into_inner()
            .then(move |asked| {
                let meta = meta.clone();
                async move {
                    asked?;
                    Ok(Payload { data: encode(&handle_read_index(&meta).await)? })
                }
            })
            .take_until(self.shutdown.clone().cancelled_owned());
        Ok(GrpcResponse::new(Box::pin(answers)))
    }

    async fn campaign(&self, request: GrpcRequest<Empty>) -> Result<GrpcResponse<Empty>, Status> {
        cluster_id::check(&request)?;
        let quiet =
            Duration::from_millis(self.meta.raft().config().heartbeat_interval * election::CAMPAIGN_QUIET_HEARTBEATS);
        let campaign =
            election::campaigns_when_asked(&self.meta.raft().metrics().borrow(), self.leader_contact.since(), quiet);
        if campaign && !self.holding_votes() {
            tracing::info!("a candidate with a shorter log asked this node to campaign: campaigning");
            let _ = self.meta.raft().trigger().elect().await;
        }
        Ok(GrpcResponse::new(Empty {}))
    }
}
