//! `MetaClient`: the one place that proposes writes and fences reads.
//!
//! A write is proposed locally when this node leads, else forwarded over gRPC
//! to the leader; through an election it is retried with the same request id
//! (so it applies once) until a deadline. `ForwardToLeader` never leaks past
//! this type.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{oneshot, Notify};

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};

use flotilla_model::{Catalog, Command, Outcome, Rejection, Request, RequestId, Response};

use crate::lease::LeaderLease;
use crate::network::client::{rpc_forward, ReadIndexLink};
use crate::network::ForwardError;
use crate::types::{NodeAddr, NodeId, Raft};

/// How long a write may wait for a leader before the client gets 503 (covers an election).
pub const WRITE_DEADLINE: Duration = Duration::from_secs(10);
/// Pause between attempts while no leader is known.
const RETRY_BACKOFF: Duration = Duration::from_millis(50);

/// Why the metadata service could not serve a request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MetaError {
    /// No leader reachable before the deadline (election, partition); retry later.
    #[error("metadata service unavailable: {0}")]
    Unavailable(String),
    /// The replica cannot continue (storage failure, shutdown).
    #[error("metadata service failed: {0}")]
    Fatal(String),
}

/// Why a write did not apply.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// `apply` refused it: a precondition did not hold, and nothing changed.
    #[error("refused: {0}")]
    Rejected(Rejection),
    /// No leader reachable before the deadline (election, partition); retry later.
    #[error("metadata service unavailable: {0}")]
    Unavailable(String),
    /// The replica cannot continue (storage failure, shutdown).
    #[error("metadata service failed: {0}")]
    Fatal(String),
}

impl From<MetaError> for WriteError {
    fn from(error: MetaError) -> Self {
        match error {
            MetaError::Unavailable(message) => WriteError::Unavailable(message),
            MetaError::Fatal(message) => WriteError::Fatal(message),
        }
    }
}

/// Proposes writes and serves reads of the replicated metadata.
#[derive(Clone)]
pub struct MetaClient {
    raft: Raft,
    node_id: NodeId,
    catalog: Catalog,
    read_rounds: Arc<ReadRounds>,
    /// This node's leader lease, when reads may use it (`crate::lease`).
    lease: Option<Arc<LeaderLease>>,
}

/// Where a reader gets the read index of its round.
type ReadIndexReply = oneshot::Sender<Result<Option<u64>, MetaError>>;

/// Readers waiting for the next read-index round. One driver task runs rounds
/// back to back; every reader that arrived while a round was in flight shares
/// the next one, so N concurrent reads cost one leader round trip, not N.
#[derive(Default)]
struct ReadRounds {
    waiting: Mutex<Vec<ReadIndexReply>>,
    wake: Notify,
}

impl MetaClient {
    /// Wraps the local Raft; spawns the read-index driver, which stops when
    /// the last clone of this client is dropped. With a `lease` (the one the
    /// Raft network records acknowledgements in), a leader answers reads from
    /// it while it holds instead of with a heartbeat round.
    pub fn new(raft: Raft, node_id: NodeId, catalog: Catalog, lease: Option<Arc<LeaderLease>>) -> Self {
        let read_rounds = Arc::new(ReadRounds::default());
        tokio::spawn(drive_read_rounds(raft.clone(), Arc::downgrade(&read_rounds)));
        MetaClient { raft, node_id, catalog, read_rounds, lease }
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The Raft handle, for composition (membership, metrics); not for handlers.
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// Commits `command` and returns what its domain handed back; a command
    /// `apply` refused is an error, so it cannot be mistaken for success.
    pub async fn write(&self, command: impl Into<Command>) -> Result<Outcome, WriteError> {
        let command = command.into();
        if command.model_version() > 0 {
            // A leader of an older binary could not even decode it: refuse here first.
            let active = self.catalog.system().model_version().map_err(|error| WriteError::Fatal(error.to_string()))?;
            flotilla_model::check_model_version(active, &command).map_err(WriteError::Rejected)?;
        }
        let request = Request { request_id: RequestId::random(), time_ms: now_ms(), command };
        let response = tokio::time::timeout(WRITE_DEADLINE, self.write_until_done(&request))
            .await
            .map_err(|_| MetaError::Unavailable("no leader accepted the write in time".into()))??;
        response.into_result().map_err(WriteError::Rejected)
    }

    async fn write_until_done(&self, request: &Request) -> Result<Response, MetaError> {
        loop {
            match self.raft.client_write(request.clone()).await {
                Ok(written) => return Ok(written.data),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                    if let (Some(leader_id), Some(leader)) = (forward.leader_id, forward.leader_node) {
                        // A leader cut off from this node never answers; once
                        // another leads, ask that one (the request id keeps a
                        // command the old one commits after all from applying twice).
                        tokio::select! {
                            forwarded = rpc_forward(&leader.rpc_addr, request) => match forwarded {
                                Ok(response) => return Ok(response),
                                Err(ForwardError::Fatal(message)) => return Err(MetaError::Fatal(message)),
                                Err(error) => tracing::debug!(%error, "forward failed; retrying"),
                            },
                            () = leader_changes_from(&self.raft, leader_id) => {
                                tracing::debug!(leader_id, "the leader changed while forwarding; retrying");
                            }
                        }
                    }
                }
                Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(error))) => {
                    return Err(MetaError::Fatal(error.to_string()));
                }
                Err(RaftError::Fatal(fatal)) => return Err(node_stopped(fatal)),
            }
            tokio::time::sleep(RETRY_BACKOFF).await;
        }
    }

    /// The catalog after a linearizable barrier: every write acknowledged
    /// before this call is visible to the returned reads.
    pub async fn read(&self) -> Result<&Catalog, MetaError> {
        tokio::time::timeout(WRITE_DEADLINE, self.barrier())
            .await
            .map_err(|_| MetaError::Unavailable("no leader confirmed the read in time".into()))??;
        Ok(&self.catalog)
    }

    /// Joins the next read-index round (started after this call, so it covers
    /// every write acknowledged before it), then waits until the local replica
    /// has applied that index.
    async fn barrier(&self) -> Result<(), MetaError> {
        let index = match self.lease_read_index() {
            Some(index) => Some(index),
            None => self.next_read_index().await?,
        };
        self.wait_applied(index).await
    }

    /// The read index this node's leader lease gives now, without a round;
    /// `None` unless leases are on, this node leads and its lease holds.
    pub(crate) fn lease_read_index(&self) -> Option<u64> {
        let lease = self.lease.as_ref()?;
        lease.read_index(&self.raft.metrics().borrow(), Instant::now())
    }

    /// The leader's read index from the next round that starts after this
    /// call, shared with every other reader waiting for it. On the leader the
    /// round is one heartbeat exchange, and the followers' read-index
    /// requests join it too (`network::service`), so the leader's own reads
    /// and every follower's cost one exchange between them.
    pub(crate) async fn next_read_index(&self) -> Result<Option<u64>, MetaError> {
        let (sender, receiver) = oneshot::channel();
        self.read_rounds.waiting.lock().push(sender);
        self.read_rounds.wake.notify_one();
        receiver.await.map_err(|_| MetaError::Fatal("read-index driver stopped".into()))?
    }

    async fn wait_applied(&self, index: Option<u64>) -> Result<(), MetaError> {
        // Mostly applied already: openraft's wait would clone the metrics and
        // arm a timer to find that out.
        if self.raft.metrics().borrow().last_applied.map(|log_id| log_id.index) >= index {
            return Ok(());
        }
        self.raft
            .wait(None)
            .applied_index_at_least(index, "linearizable read")
            .await
            .map(|_| ())
            .map_err(|error| MetaError::Unavailable(format!("this node stopped waiting for its replica: {error}")))
    }

    /// The local replica without a barrier: for content addressed by digest,
    /// which never changes once present, and for `read_consistency = "local"`.
    pub fn local(&self) -> &Catalog {
        &self.catalog
    }
}

/// Runs read-index rounds while anyone waits for one.
async fn drive_read_rounds(raft: Raft, rounds: Weak<ReadRounds>) {
    let mut link = ReadIndexLink::default();
    loop {
        let batch = {
            let Some(rounds) = rounds.upgrade() else { return };
            // Wait for a reader, but look again now and then in case the client is gone.
            let _ = tokio::time::timeout(Duration::from_secs(1), rounds.wake.notified()).await;
            let batch: Vec<ReadIndexReply> = std::mem::take(&mut *rounds.waiting.lock());
            batch
        };
        if batch.is_empty() {
            continue;
        }
        let result = tokio::time::timeout(WRITE_DEADLINE, read_index(&raft, &mut link))
            .await
            .unwrap_or_else(|_| Err(MetaError::Unavailable("no leader confirmed the read in time".into())));
        for reader in batch {
            let _ = reader.send(result.clone());
        }
    }
}

/// The leader's read index: this node's own when it leads (after a heartbeat
/// round confirms it still does), else asked of the leader over `link`.
async fn read_index(raft: &Raft, link: &mut ReadIndexLink) -> Result<Option<u64>, MetaError> {
    loop {
        // A follower that knows its leader asks it straight away; the leader
        // (or a deposed one, which cannot confirm a quorum) decides.
        let leader = match other_leader(raft) {
            Some(leader) => Some(leader),
            None => match raft.get_read_log_id().await {
                Ok((read_log_id, _applied)) => return Ok(read_log_id.map(|log_id| log_id.index)),
                Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(forward))) => {
                    forward.leader_id.zip(forward.leader_node)
                }
                Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_))) => None,
                Err(RaftError::Fatal(fatal)) => return Err(node_stopped(fatal)),
            },
        };
        if let Some((leader_id, leader)) = leader {
            tokio::select! {
                asked = link.ask(&leader.rpc_addr) => match asked {
                    Ok(index) => return Ok(index),
                    Err(error) => tracing::debug!(%error, "read index failed; retrying"),
                },
                () = leader_changes_from(raft, leader_id) => {
                    tracing::debug!(leader_id, "the leader changed while asking for the read index; retrying");
                }
            }
        }
        tokio::time::sleep(RETRY_BACKOFF).await;
    }
}

/// This node's Raft stopped (a storage error): the cluster may well serve
/// the request elsewhere, and this node exits to be restarted, so the
/// client is told to retry.
fn node_stopped(fatal: openraft::error::Fatal<NodeId>) -> MetaError {
    MetaError::Unavailable(format!("this node's raft stopped ({fatal}); retry, through another node if need be"))
}

/// The leader this node's metrics name, when that is another node.
fn other_leader(raft: &Raft) -> Option<(NodeId, NodeAddr)> {
    let metrics = raft.metrics();
    let metrics = metrics.borrow();
    let leader = metrics.current_leader.filter(|&leader| leader != metrics.id)?;
    let node = metrics.membership_config.membership().get_node(&leader)?;
    Some((leader, node.clone()))
}

/// Resolves once this node knows a leader other than `leader` (or none).
async fn leader_changes_from(raft: &Raft, leader: NodeId) {
    let mut metrics = raft.metrics();
    while metrics.borrow_and_update().current_leader == Some(leader) {
        if metrics.changed().await.is_err() {
            // Raft is shutting down: never resolve, the other branch ends the call.
            std::future::pending::<()>().await;
        }
    }
}

/// Milliseconds since the Unix epoch, in cluster time (see [`crate::clock`]).
pub use crate::clock::now_ms;
