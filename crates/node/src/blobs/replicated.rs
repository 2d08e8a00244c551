//! The replicated blob store: the `BlobStore` every REST surface uses.
//!
//! ```text
//!   put(digest, body) ─► owners of partition(digest) (new ∪ old while a layout syncs)
//!        │   body chunk ──┬─► local FsBlobStore.put   (hash, fsync, rename)
//!        │                ├─► peer A  BlobService.Put (hash, fsync, rename)
//!        │                └─► peer B  BlobService.Put
//!        └─ Ok once W = majority of R owners verified and fsynced the blob
//!
//!   read(digest) ─► local disk ─► else the owners (new, then old), then any member
//! ```
//!
//! Gossip steers both paths: a node it calls down is not written to (the
//! write needs a quorum of the others) and is asked for a blob last.
//!
//! The body is never buffered whole: each chunk is handed to every target
//! through a small bounded channel, so the slowest live target paces the
//! upload, and a target that stalls longer than the idle limit is dropped (the
//! write still succeeds if a quorum remains; the missing copy is logged and
//! counted for repair). The receiving node need not be an owner.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_stream::wrappers::ReceiverStream;

use flotilla_raft::NodeId;
use flotilla_storage::blob_store::{BlobError, BlobStore, ByteStream};
use flotilla_storage::file_stream::{open_with_size, stream_file, FileRegion};
use flotilla_storage::fs::FsBlobStore;
use flotilla_storage::{ByteRange, Digest};

use super::peer::{BlobPeers, STREAM_IDLE_TIMEOUT};
use super::{partition_of, RepairDebt};
use crate::cluster::liveness::{Liveness, LivenessTable};
use crate::cluster::ClusterView;

/// Chunks buffered per target: enough to ride out a short hiccup of one
/// target without stalling the others, small enough to bound memory.
const FANOUT_BUFFER_CHUNKS: usize = 16;

/// Where a blob's copies go and how many must succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Targets {
    nodes: Vec<NodeId>,
    quorum: usize,
}

/// The outcome of streaming one body to several targets.
struct Fanout {
    stored: Vec<(NodeId, u64)>,
    failed: Vec<(NodeId, BlobError)>,
    body_error: Option<std::io::Error>,
}

/// Blobs spread over the cluster's nodes by the partition layout.
pub struct ReplicatedBlobStore {
    view: Arc<ClusterView>,
    local: Arc<FsBlobStore>,
    peers: BlobPeers,
    liveness: LivenessTable,
    /// Set when a blob is acknowledged below its replication factor.
    repair_debt: RepairDebt,
}

impl ReplicatedBlobStore {
    pub fn new(
        view: Arc<ClusterView>,
        local: Arc<FsBlobStore>,
        peers: BlobPeers,
        liveness: LivenessTable,
        repair_debt: RepairDebt,
    ) -> Self {
        ReplicatedBlobStore { view, local, peers, liveness, repair_debt }
    }

    fn targets(&self, digest: &Digest) -> Targets {
        let Some(layout) = self.view.layout() else {
            return Targets { nodes: vec![self.view.node_id()], quorum: 1 };
        };
        let partition = partition_of(digest, layout.partitions);
        let owners = layout.owners_of(partition).len().max(1);
        Targets { nodes: layout.write_owners(partition), quorum: owners / 2 + 1 }
    }

    fn is_local_only(&self, targets: &Targets) -> bool {
        targets.nodes == [self.view.node_id()]
    }

    /// Nodes that may hold `digest`, best first ([`super::sources`]); nodes
    /// gossip calls down go last.
    fn candidates(&self, digest: &Digest) -> Vec<NodeId> {
        let mut nodes = super::sources(&self.view, digest);
        // A stable sort keeps the owner order among nodes of equal liveness.
        nodes.sort_by_key(|node| self.liveness.of(*node) == Liveness::Down);
        nodes
    }

    fn rpc_addr(&self, node: NodeId) -> Result<String, BlobError> {
        self.view
            .addr_of(node)
            .map(|addr| addr.rpc_addr)
            .ok_or_else(|| BlobError::Unavailable(format!("no address for node {node}")))
    }

    /// Streams `body` to every node of `nodes` at once.
    async fn fan_out(&self, digest: &Digest, mut body: ByteStream, nodes: &[NodeId]) -> Fanout {
        let mut tasks = JoinSet::new();
        let mut senders = Vec::with_capacity(nodes.len());
        let mut failed = Vec::new();
        for &node in nodes {
            let (sender, receiver) = mpsc::channel::<std::io::Result<Bytes>>(FANOUT_BUFFER_CHUNKS);
            let stream: ByteStream = Box::pin(ReceiverStream::new(receiver));
            if node == self.view.node_id() {
                let local = self.local.clone();
                let digest = digest.clone();
                tasks.spawn(async move { (node, local.put(&digest, stream).await) });
            } else if self.liveness.of(node) == Liveness::Down {
                // Not worth a connect timeout: repair copies the blob once the node is back.
                failed.push((node, BlobError::Unavailable(format!("node {node} is down"))));
                continue;
            } else {
                let addr = match self.rpc_addr(node) {
                    Ok(addr) => addr,
                    Err(error) => {
                        failed.push((node, error));
                        continue;
                    }
                };
                let peers = self.peers.clone();
                let digest = digest.clone();
                tasks.spawn(async move { (node, peers.put(&addr, &digest, stream).await) });
            }
            senders.push(sender);
        }
        let mut body_error = None;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(data) => {
                    let sends = senders.iter().map(|sender| send_within(sender, Ok(data.clone()), STREAM_IDLE_TIMEOUT));
                    let delivered = futures::future::join_all(sends).await;
                    let mut delivered = delivered.into_iter();
                    senders.retain(|_| delivered.next().unwrap_or(false));
                    if senders.is_empty() {
                        break;
                    }
                }
                Err(error) => {
                    for sender in &senders {
                        let _ = sender.try_send(Err(std::io::Error::other("the request body failed")));
                    }
                    body_error = Some(error);
                    break;
                }
            }
        }
        drop(senders);
        let mut stored = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((node, Ok(size))) => stored.push((node, size)),
                Ok((node, Err(error))) => failed.push((node, error)),
                Err(error) => tracing::error!(%error, "blob write task failed"),
            }
        }
        Fanout { stored, failed, body_error }
    }

    /// Judges a fan-out: the size if a quorum stored it, else the most telling error.
    fn settle(&self, digest: &Digest, targets: &Targets, fanout: Fanout) -> Result<u64, BlobError> {
        if let Some(error) = fanout.body_error {
            return Err(BlobError::Io(error));
        }
        if fanout.stored.len() >= targets.quorum {
            if !fanout.failed.is_empty() {
                let missing: Vec<NodeId> = fanout.failed.iter().map(|(node, _)| *node).collect();
                tracing::warn!(%digest, ?missing, stored = fanout.stored.len(), "blob stored below its replication factor; repair will copy it");
                self.repair_debt.incur();
            }
            return Ok(fanout.stored[0].1);
        }
        let mut failures = fanout.failed.into_iter().map(|(_, error)| error);
        let verdict = failures.find(|error| {
            matches!(
                error,
                BlobError::DigestMismatch { .. } | BlobError::SizeMismatch { .. } | BlobError::TooLarge { .. }
            )
        });
        Err(verdict.unwrap_or_else(|| {
            BlobError::Unavailable(format!(
                "only {} of the {} needed owners stored the blob",
                fanout.stored.len(),
                targets.quorum
            ))
        }))
    }

    async fn remote_stat(&self, digest: &Digest) -> Result<Option<(NodeId, u64)>, BlobError> {
        let candidates = self.candidates(digest);
        let mut answered = candidates.is_empty();
        for node in candidates {
            let Ok(addr) = self.rpc_addr(node) else { continue };
            match self.peers.stat(&addr, digest).await {
                Ok(Some(size)) => return Ok(Some((node, size))),
                Ok(None) => answered = true,
                Err(error) => tracing::debug!(node, %error, "peer did not answer a stat"),
            }
        }
        if answered {
            Ok(None)
        } else {
            Err(BlobError::Unavailable("no node holding the blob answered".into()))
        }
    }
}

/// Hands `item` to one target, giving up if it accepts nothing for `limit`.
async fn send_within(
    sender: &mpsc::Sender<std::io::Result<Bytes>>,
    item: std::io::Result<Bytes>,
    limit: Duration,
) -> bool {
    matches!(tokio::time::timeout(limit, sender.send(item)).await, Ok(Ok(())))
}

#[async_trait::async_trait]
impl BlobStore for ReplicatedBlobStore {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, BlobError> {
        if let Some(size) = self.local.stat(digest).await? {
            return Ok(Some(size));
        }
        Ok(self.remote_stat(digest).await?.map(|(_, size)| size))
    }

    async fn read(&self, digest: &Digest, range: Option<ByteRange>) -> Result<ByteStream, BlobError> {
        match self.local.read(digest, range).await {
            Err(BlobError::NotFound) => {}
            other => return other,
        }
        let Some((node, size)) = self.remote_stat(digest).await? else { return Err(BlobError::NotFound) };
        let range = match range {
            Some(range) if range.start >= size => return Err(BlobError::RangeNotSatisfiable { size }),
            Some(range) => Some(ByteRange { start: range.start, end: range.end.min(size.saturating_sub(1)) }),
            None => None,
        };
        self.peers.get(&self.rpc_addr(node)?, digest, range).await
    }

    /// This node's own copy only: a blob held elsewhere is streamed by `read`.
    async fn open_region(&self, digest: &Digest, range: Option<ByteRange>) -> Result<Option<FileRegion>, BlobError> {
        self.local.open_region(digest, range).await
    }

    async fn put(&self, expected: &Digest, body: ByteStream) -> Result<u64, BlobError> {
        let targets = self.targets(expected);
        if self.is_local_only(&targets) {
            return self.local.put(expected, body).await;
        }
        let fanout = self.fan_out(expected, body, &targets.nodes).await;
        self.settle(expected, &targets, fanout)
    }

    /// Adopts a verified file: renamed into the local store when this node is
    /// an owner, streamed to the other owners at the same time.
    async fn put_file(&self, digest: &Digest, path: &Path) -> Result<u64, BlobError> {
        let targets = self.targets(digest);
        if self.is_local_only(&targets) {
            return self.local.put_file(digest, path).await;
        }
        let me = self.view.node_id();
        let remote: Vec<NodeId> = targets.nodes.iter().copied().filter(|node| *node != me).collect();
        // Open before the rename below: the open file stays readable afterwards.
        let (file, size) = open_with_size(path.to_owned()).await?;
        let send = self.fan_out(digest, stream_file(file, 0, size), &remote);
        let mut fanout = if targets.nodes.contains(&me) {
            let (fanout, local) = tokio::join!(send, self.local.put_file(digest, path));
            let mut fanout = fanout;
            match local {
                Ok(size) => fanout.stored.push((me, size)),
                Err(error) => fanout.failed.push((me, error)),
            }
            fanout
        } else {
            let fanout = send.await;
            let _ = tokio::fs::remove_file(path).await;
            fanout
        };
        fanout.stored.sort_by_key(|(node, _)| *node != me);
        self.settle(digest, &targets, fanout)
    }

    async fn delete(&self, digest: &Digest) -> Result<bool, BlobError> {
        self.local.delete(digest).await
    }

    async fn list(&self) -> Result<Vec<(Digest, u64)>, BlobError> {
        self.local.list().await
    }
}
