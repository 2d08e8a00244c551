//! Outbound RPCs: openraft's network (one lazily connected channel per peer, a
//! deadline on every call) and the forward / read-index calls of `MetaClient`.
//!
//! Errors are mapped so that openraft reacts correctly: a peer that cannot be
//! connected to is `Unreachable` (openraft backs off), a failed or timed-out
//! call is a `NetworkError` (retried at once), an error the peer's Raft
//! returned is a `RemoteError`, and an append batch over the message limit is
//! `PayloadTooLarge` (openraft sends fewer entries).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

use super::cluster_id;
use super::proto::raft_service_client::RaftServiceClient;
use super::proto::{Empty, Payload};
use super::tls::RpcTls;
use super::{ForwardError, MAX_MESSAGE_BYTES};
use crate::election::{Answer, VoteOutcome, VoteOutcomes};
use crate::lease::LeaderLease;
use crate::types::{NodeAddr, NodeId, TypeConfig};
use flotilla_model::{Request, Response};

/// Deadline of a Raft RPC when openraft gives none, and of forward / read-index
/// calls (a forwarded write waits for a commit, so it gets the same bound).
pub const RPC_TIMEOUT: Duration = Duration::from_secs(5);
/// Deadline of one snapshot chunk when openraft gives none: a 3 MiB chunk on a slow link.
pub const SNAPSHOT_CHUNK_TIMEOUT: Duration = Duration::from_secs(30);
/// Deadline of a campaign hint: an election is under way, a late hint is useless.
const CAMPAIGN_TIMEOUT: Duration = Duration::from_millis(200);
/// How long to wait for a TCP connection to a peer before calling it unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// HTTP/2 ping interval, so a dead connection is noticed without waiting for a call.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// How long a ping may go unanswered before the connection is dropped.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 flow-control windows: large enough that a blob stream between
/// nodes is not paced by window updates on a fast link.
const STREAM_WINDOW_BYTES: u32 = 4 << 20;
const CONNECTION_WINDOW_BYTES: u32 = 16 << 20;

/// Channels to peers by address, shared by clones; connections are made lazily
/// and re-established by tonic after a failure.
#[derive(Clone, Default)]
struct Channels {
    by_addr: Arc<Mutex<HashMap<String, Channel>>>,
}

impl Channels {
    fn channel(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        let mut channels = self.by_addr.lock();
        Ok(match channels.get(addr) {
            Some(channel) => channel.clone(),
            None => {
                let channel = endpoint(addr)?.connect_lazy();
                channels.insert(addr.to_owned(), channel.clone());
                channel
            }
        })
    }

    fn client(&self, addr: &str) -> Result<RaftServiceClient<Channel>, tonic::transport::Error> {
        Ok(RaftServiceClient::new(self.channel(addr)?)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }
}

/// The address outgoing inter-node connections leave from; see [`set_source_address`].
static SOURCE_ADDRESS: OnceLock<IpAddr> = OnceLock::new();

/// Makes every outgoing inter-node connection of this process leave from
/// `ip` (the node's RPC listen address), so that network rules can tell the
/// nodes of one host apart (firewalls, fault injection between loopback
/// nodes on 127.0.0.x). Set once, at start; an unspecified address is ignored.
pub fn set_source_address(ip: IpAddr) {
    if !ip.is_unspecified() {
        let _ = SOURCE_ADDRESS.set(ip);
    }
}

/// The TLS settings of outgoing inter-node connections; see [`set_tls`].
static TLS: OnceLock<RpcTls> = OnceLock::new();

/// Makes every outgoing inter-node connection of this process mutual TLS
/// with `tls` (the cluster CA and this node's certificate). Set once, at
/// start, before the first connection; a second call is ignored.
pub fn set_tls(tls: RpcTls) {
    let _ = TLS.set(tls);
}

/// An endpoint to a peer's gRPC address (`host:port`) with the settings every
/// inter-node channel shares: TLS when configured, connect timeout,
/// TCP_NODELAY, HTTP/2 keepalive, large flow-control windows for blob
/// streams, and the source address.
pub fn endpoint(addr: &str) -> Result<Endpoint, tonic::transport::Error> {
    let endpoint = match TLS.get() {
        Some(tls) => Endpoint::from_shared(format!("https://{addr}"))?.tls_config(tls.client_config())?,
        None => Endpoint::from_shared(format!("http://{addr}"))?,
    };
    Ok(endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .initial_stream_window_size(Some(STREAM_WINDOW_BYTES))
        .initial_connection_window_size(Some(CONNECTION_WINDOW_BYTES))
        .local_address(SOURCE_ADDRESS.get().copied()))
}

/// The process's channel to the node at `addr`, for any inter-node service
/// it serves (a channel carries every service of that node).
pub fn shared_channel(addr: &str) -> Result<Channel, tonic::transport::Error> {
    shared_channels().channel(addr)
}

/// The channels of the free `rpc_*` functions, which have no owner to hold them.
fn shared_channels() -> &'static Channels {
    static CHANNELS: OnceLock<Channels> = OnceLock::new();
    CHANNELS.get_or_init(Channels::default)
}

/// openraft's network factory: one [`PeerClient`] per replication target.
#[derive(Clone)]
pub struct NetworkFactory {
    channels: Channels,
    vote_outcomes: VoteOutcomes,
    lease: Arc<LeaderLease>,
}

impl NetworkFactory {
    /// A factory whose clients also report the answer to each of this node's
    /// vote requests to `vote_outcomes` (for [`crate::election`]) and each
    /// append a peer accepted to `lease` (for [`crate::lease`]).
    pub fn new(vote_outcomes: VoteOutcomes, lease: Arc<LeaderLease>) -> NetworkFactory {
        NetworkFactory { channels: Channels::default(), vote_outcomes, lease }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &NodeAddr) -> PeerClient {
        PeerClient {
            target,
            node: node.clone(),
            channels: self.channels.clone(),
            vote_outcomes: self.vote_outcomes.clone(),
            lease: self.lease.clone(),
        }
    }
}

/// The network to one peer.
pub struct PeerClient {
    target: NodeId,
    node: NodeAddr,
    channels: Channels,
    vote_outcomes: VoteOutcomes,
    lease: Arc<LeaderLease>,
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, NodeAddr, E>>;

#[derive(Clone, Copy)]
enum RpcKind {
    Append { entries: u64 },
    Vote,
    Snapshot,
}

impl PeerClient {
    /// One Raft RPC: payload in serde_json, the peer's `Result<Resp, E>` back.
    async fn call<Req, Resp, E>(&self, kind: RpcKind, request: &Req, timeout: Duration) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let data = serde_json::to_vec(request).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut client =
            self.channels.client(&self.node.rpc_addr).map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let grpc = with_deadline(Payload { data }, timeout);
        let reply = match kind {
            RpcKind::Append { .. } => client.append_entries(grpc).await,
            RpcKind::Vote => client.vote(grpc).await,
            RpcKind::Snapshot => client.install_snapshot(grpc).await,
        };
        let reply = reply.map_err(|status| status_error(kind, &status))?;
        let result: Result<Resp, E> =
            serde_json::from_slice(&reply.into_inner().data).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|error| RPCError::RemoteError(RemoteError::new_with_node(self.target, self.node.clone(), error)))
    }
}

fn status_error<E: std::error::Error>(kind: RpcKind, status: &tonic::Status) -> RPCError<NodeId, NodeAddr, E> {
    match (status.code(), kind) {
        // Connection refused, reset or not yet possible, or a node of another
        // cluster at that address: back off before retrying.
        (tonic::Code::Unavailable | tonic::Code::PermissionDenied, _) => {
            RPCError::Unreachable(Unreachable::new(status))
        }
        // Over the message limit: ask openraft for half as many entries.
        (tonic::Code::ResourceExhausted, RpcKind::Append { entries }) if entries > 1 => {
            RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(entries / 2))
        }
        _ => RPCError::Network(NetworkError::new(status)),
    }
}

/// openraft's time budget for the call (`ttl`, hard or soft), or `fallback`
/// when it gives none.
fn deadline(ttl: Duration, fallback: Duration) -> Duration {
    if ttl.is_zero() {
        fallback
    } else {
        ttl
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, RaftError<NodeId>> {
        let kind = RpcKind::Append { entries: rpc.entries.len() as u64 };
        let sent = Instant::now();
        let result = self.call(kind, &rpc, deadline(option.hard_ttl(), RPC_TIMEOUT)).await;
        // Every answer but a higher vote means the peer accepted this leader's
        // vote, and refuses other candidates for a while (`crate::lease`).
        if result.as_ref().is_ok_and(|response| !matches!(response, AppendEntriesResponse::HigherVote(_))) {
            self.lease.record_ack(self.target, rpc.vote, sent);
        }
        result
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>> {
        self.call(RpcKind::Snapshot, &rpc, deadline(option.hard_ttl(), SNAPSHOT_CHUNK_TIMEOUT)).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, RaftError<NodeId>> {
        // The soft deadline, so that a silent peer is reported as unreachable
        // before openraft gives up on the call at the hard one.
        let timeout = deadline(option.soft_ttl(), RPC_TIMEOUT);
        let result = match tokio::time::timeout(timeout, self.call(RpcKind::Vote, &rpc, timeout)).await {
            Ok(result) => result,
            Err(elapsed) => Err(RPCError::Network(NetworkError::new(&elapsed))),
        };
        let answer = Answer::of(&rpc, &result);
        // Closed only when the node shuts down.
        let _ = self.vote_outcomes.send(VoteOutcome { vote: rpc.vote, peer: self.target, answer });
        result
    }
}

/// A call of the forward / read-index vocabulary.
enum LeaderCall {
    Forward(Vec<u8>),
    ReadIndex,
}

/// A request with its deadline, naming this node's cluster.
fn with_deadline<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    cluster_id::stamp(&mut request);
    request
}

/// Sends `call` to `addr` and decodes the callee's `Result<T, ForwardError>`;
/// transport failures are `Unavailable`, so the caller retries.
async fn call_leader<T: DeserializeOwned>(addr: &str, call: LeaderCall) -> Result<T, ForwardError> {
    let mut client = shared_channels().client(addr).map_err(|e| ForwardError::Unavailable(format!("{addr}: {e}")))?;
    let reply = match call {
        LeaderCall::Forward(data) => client.forward(with_deadline(Payload { data }, RPC_TIMEOUT)).await,
        LeaderCall::ReadIndex => client.read_index(with_deadline(Empty {}, RPC_TIMEOUT)).await,
    };
    let reply = reply.map_err(|status| ForwardError::Unavailable(format!("{addr}: {status}")))?;
    serde_json::from_slice::<Result<T, ForwardError>>(&reply.into_inner().data)
        .map_err(|e| ForwardError::Unavailable(format!("{addr}: undecodable reply: {e}")))?
}

/// Forwards a client write to the node at `addr` (normally the leader), which
/// commits it and returns how it applied, or names the leader it knows.
pub async fn rpc_forward(addr: &str, request: &Request) -> Result<Response, ForwardError> {
    let data = serde_json::to_vec(request).map_err(|e| ForwardError::Fatal(format!("encode request: {e}")))?;
    call_leader(addr, LeaderCall::Forward(data)).await
}

/// Asks the voter at `addr`, which refused this node's vote for its longer
/// log, to campaign now (see [`crate::election`]). Best effort: the answer
/// says nothing, and an error only means the hint did not arrive.
pub async fn rpc_campaign(addr: &str) -> Result<(), tonic::Status> {
    let mut client = shared_channels().client(addr).map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    client.campaign(with_deadline(Empty {}, CAMPAIGN_TIMEOUT)).await.map(|_| ())
}

/// Asks the node at `addr` (normally the leader) for a read index: the log
/// index this replica must have applied before a linearizable read.
pub async fn rpc_read_index(addr: &str) -> Result<Option<u64>, ForwardError> {
    call_leader(addr, LeaderCall::ReadIndex).await
}

/// A follower's read-index questions to its leader, over one long-lived
/// stream (`RaftService.ReadIndexStream`) instead of a call per round: on a
/// leader serving its followers' rounds, the calls' headers, trailers and
/// per-call set-up cost as much CPU as the reads it served itself. The stream
/// is reopened after any failure and when the leader changes; a peer without
/// the stream method (an older version, mid-upgrade) is asked with calls.
#[derive(Default)]
pub struct ReadIndexLink {
    open: Option<OpenLink>,
    /// The last peer found without the stream method.
    calls_only: Option<String>,
}

/// An open stream to one peer.
struct OpenLink {
    addr: String,
    questions: tokio::sync::mpsc::Sender<Empty>,
    answers: tonic::Streaming<Payload>,
}

impl ReadIndexLink {
    /// The read index from the node at `addr` (normally the leader), or why not.
    pub async fn ask(&mut self, addr: &str) -> Result<Option<u64>, ForwardError> {
        if self.calls_only.as_deref() == Some(addr) {
            return rpc_read_index(addr).await;
        }
        // Out of `self` while asking: when this call is dropped half-way (the
        // leader changed), the stream goes with it, and no late answer to
        // this question is ever taken for the next one's.
        let mut link = match self.open.take() {
            Some(link) if link.addr == addr => link,
            _ => match OpenLink::open(addr).await? {
                Some(link) => link,
                None => {
                    self.calls_only = Some(addr.to_owned());
                    return rpc_read_index(addr).await;
                }
            },
        };
        let answer = tokio::time::timeout(RPC_TIMEOUT, link.ask())
            .await
            .map_err(|_| ForwardError::Unavailable(format!("{addr}: no read index in {RPC_TIMEOUT:?}")))??;
        self.open = Some(link);
        answer
    }
}

impl OpenLink {
    /// Opens the stream; `None` when the peer does not know the method.
    async fn open(addr: &str) -> Result<Option<OpenLink>, ForwardError> {
        let unavailable = |error: &dyn std::fmt::Display| ForwardError::Unavailable(format!("{addr}: {error}"));
        let mut client = shared_channels().client(addr).map_err(|e| unavailable(&e))?;
        let (questions, asked) = tokio::sync::mpsc::channel(1);
        let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(asked));
        cluster_id::stamp(&mut request);
        match tokio::time::timeout(RPC_TIMEOUT, client.read_index_stream(request)).await {
            Err(elapsed) => Err(unavailable(&elapsed)),
            Ok(Err(status)) if status.code() == tonic::Code::Unimplemented => Ok(None),
            Ok(Err(status)) => Err(unavailable(&status)),
            Ok(Ok(response)) => Ok(Some(OpenLink { addr: addr.to_owned(), questions, answers: response.into_inner() })),
        }
    }

    /// One question and its answer: the outer error is the stream's (it is
    /// then dropped), the inner one the peer's answer (not the leader, …).
    async fn ask(&mut self) -> Result<Result<Option<u64>, ForwardError>, ForwardError> {
        let lost = |what: String| ForwardError::Unavailable(format!("{}: read-index stream {what}", self.addr));
        self.questions.send(Empty {}).await.map_err(|_| lost("closed".into()))?;
        match self.answers.message().await {
            Ok(Some(answer)) => serde_json::from_slice(&answer.data).map_err(|e| lost(format!("undecodable: {e}"))),
            Ok(None) => Err(lost("ended".into())),
            Err(status) => Err(lost(format!("failed: {status}"))),
        }
    }
}
