//! The cluster's blob data path.
//!
//! - [`replicated::ReplicatedBlobStore`]: the `BlobStore` the REST surfaces
//!   use. Writes stream to the blob's owners in parallel and succeed on a
//!   write quorum; reads come from the local disk or an owner.
//! - [`service`]: the gRPC `BlobService` other nodes call.
//! - [`peer`]: the client of other nodes' blob services.
//! - [`sync`]: pushing copies to the owners a new layout added.
//! - [`maintain`]: repair, scrub and dropping orphan copies on one node.

pub mod maintain;
pub mod peer;
pub mod replicated;
pub mod service;
pub mod sync;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use flotilla_raft::NodeId;
use flotilla_storage::blob_store::{BlobError, BlobStore};
use flotilla_storage::Digest;

use self::peer::BlobPeers;
use crate::cluster::ClusterView;
use crate::placement;

/// Whether this node has acknowledged a blob with fewer copies than its
/// replication factor since the last repair it asked for (a write that
/// succeeded on a quorum while an owner was down or cut off). The repair
/// trigger (`tasks::auto_repair`) pays the debt once every owner is back.
#[derive(Debug, Clone, Default)]
pub struct RepairDebt(Arc<AtomicBool>);

impl RepairDebt {
    /// A copy is missing somewhere.
    pub fn incur(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether a copy may be missing.
    pub fn is_owed(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// A repair that started after the debt was incurred will copy it.
    pub fn settle(&self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// The partition of a blob: from the leading bits of its hash.
pub fn partition_of(digest: &Digest, partitions: u32) -> u32 {
    placement::partition_of(digest.hash(), partitions)
}

/// The other nodes that may hold `digest`, in the order to ask: its owners
/// (new, then old while a layout syncs), then every other member.
pub fn sources(view: &ClusterView, digest: &Digest) -> Vec<NodeId> {
    let me = view.node_id();
    let mut nodes = match view.layout() {
        Some(layout) => layout.read_owners(partition_of(digest, layout.partitions)),
        None => Vec::new(),
    };
    let metrics = view.metrics();
    for member in metrics.membership_config.membership().nodes().map(|(id, _)| *id) {
        if !nodes.contains(&member) {
            nodes.push(member);
        }
    }
    nodes.retain(|node| *node != me);
    nodes
}

/// Sends this node's copy of `digest` to the peer at `addr` unless it has one
/// already: the bytes sent, `None` if the peer held it.
pub async fn send_if_missing(
    peers: &BlobPeers,
    local: &dyn BlobStore,
    addr: &str,
    digest: &Digest,
) -> Result<Option<u64>, BlobError> {
    if peers.stat(addr, digest).await?.is_some() {
        return Ok(None);
    }
    let body = local.read(digest, None).await?;
    peers.put(addr, digest, body).await.map(Some)
}
