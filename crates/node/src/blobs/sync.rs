//! Pushing this node's copies to the owners a new layout added.
//!
//! Only partitions whose owner list gained nodes are looked at, and only the
//! gained owners are asked (one stat per blob and owner); a copy they already
//! hold is not sent again, so a repeated sync after a failure is cheap. The
//! copying is paced by the node's `copy_rate`.

use flotilla_model::system::Layout;
use flotilla_storage::blob_store::{BlobError, BlobStore};

use super::maintain::Maintainer;
use super::{partition_of, send_if_missing};
use crate::pacer::Pacer;

/// What a sync moved.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pushed {
    pub blobs: u64,
    pub bytes: u64,
}

/// Copies local blobs of partitions that gained owners in `layout` to those owners.
pub async fn push_moved_blobs(node: &Maintainer, layout: &Layout) -> Result<Pushed, BlobError> {
    let Some(previous) = layout.previous.as_ref() else { return Ok(Pushed::default()) };
    let (view, peers, local) = (&node.view, &node.peers, &node.local);
    let mut pushed = Pushed::default();
    let mut pacer = Pacer::new(node.copy_rate);
    for (digest, _) in local.list().await? {
        let partition = partition_of(&digest, layout.partitions);
        let old = previous.get(partition as usize).map(Vec::as_slice).unwrap_or(&[]);
        let me = view.node_id();
        let gained: Vec<_> =
            layout.owners_of(partition).iter().copied().filter(|node| !old.contains(node) && *node != me).collect();
        for owner in gained {
            let addr = view
                .addr_of(owner)
                .ok_or_else(|| BlobError::Io(std::io::Error::other(format!("no address for node {owner}"))))?;
            let size = match send_if_missing(peers, &**local, &addr.rpc_addr, &digest).await {
                Ok(Some(size)) => size,
                Ok(None) => continue,
                // Collected since the listing: nothing to move.
                Err(BlobError::NotFound) => break,
                Err(error) => return Err(error),
            };
            pushed.blobs += 1;
            pushed.bytes += size;
            node.metrics.rebalance_copied_blobs.inc();
            node.metrics.rebalance_copied_bytes.inc_by(size);
            pacer.spend(size).await;
        }
    }
    Ok(pushed)
}
