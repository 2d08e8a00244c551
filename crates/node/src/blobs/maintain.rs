//! Maintenance of one node's copies, run when a cluster task asks for it
//! (the leader calls `BlobService.Maintain` on every data node).
//!
//! - **Repair** (anti-entropy): Raft replicates the blob records to every
//!   node, so each owner can tell on its own, without asking anybody, which
//!   recorded blobs of its partitions it lacks. It lists its store once, walks
//!   the records once, and copies only what is missing, from the other owners
//!   first. A healthy cluster pays one local listing and one local scan per
//!   node, and no network traffic.
//! - **Scrub**: every local copy is re-hashed; a corrupt one is moved to
//!   quarantine and a verified copy is fetched from a replica.
//! - **Drop orphans**: once a layout is synced, copies of partitions this node
//!   no longer owns are dropped, each only after every owner is seen holding
//!   it (an owner that lacks it is sent this copy first). Copies without a
//!   blob record are left to the GC reclaimer and its stray sweep.
//!
//! All three pace their disk and network use ([`Pacer`]) so that pushes and
//! pulls keep most of the machine.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use flotilla_model::system::Layout;
use flotilla_model::tasks::TaskCounters;
use flotilla_raft::{MetaClient, NodeId};
use flotilla_storage::blob_store::{BlobError, BlobStore};
use flotilla_storage::fs::{FsBlobStore, Verified};
use flotilla_storage::Digest;

use super::peer::BlobPeers;
use super::{partition_of, send_if_missing, sources};
use crate::cluster::ClusterView;
use crate::pacer::Pacer;
use crate::telemetry::MaintenanceMetrics;

/// Blob records read per page while repairing.
const RECORD_PAGE: usize = 1000;

/// Why maintenance could not run on this node.
#[derive(Debug, thiserror::Error)]
pub enum MaintainError {
    /// Not now: no layout yet, or it is syncing. Retry later.
    #[error("{0}")]
    NotReady(String),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error("reading the replicated state: {0}")]
    Meta(String),
}

/// What a node needs to maintain its copies.
#[derive(Clone)]
pub struct Maintainer {
    pub view: Arc<ClusterView>,
    pub meta: MetaClient,
    pub local: Arc<FsBlobStore>,
    pub peers: BlobPeers,
    /// Bytes per second copied by repair (and pushed by rebalancing); `None` = unpaced.
    pub copy_rate: Option<u64>,
    /// Bytes per second re-hashed by scrub; `None` = unpaced.
    pub scrub_rate: Option<u64>,
    pub metrics: MaintenanceMetrics,
}

impl Maintainer {
    fn layout(&self) -> Result<Arc<Layout>, MaintainError> {
        self.view.layout().ok_or_else(|| MaintainError::NotReady("no layout yet".into()))
    }

    /// Copies the recorded blobs of this node's partitions that it lacks.
    pub async fn repair(&self, dry_run: bool) -> Result<TaskCounters, MaintainError> {
        // Records committed before the task started are all applied here.
        let catalog = self.meta.read().await.map_err(|error| MaintainError::Meta(error.to_string()))?;
        let layout = self.layout()?;
        let me = self.view.node_id();
        let held: HashSet<Digest> = self.local.list().await?.into_iter().map(|(digest, _)| digest).collect();
        let mut counters = TaskCounters::default();
        let mut missing = Vec::new();
        let mut short = BTreeSet::new();
        let mut cursor: Option<Digest> = None;
        loop {
            let page = catalog
                .blobs()
                .blobs(cursor.as_ref(), RECORD_PAGE)
                .map_err(|error| MaintainError::Meta(error.to_string()))?;
            for (digest, record) in &page {
                let partition = partition_of(digest, layout.partitions);
                if !layout.owners_of(partition).contains(&me) {
                    continue;
                }
                counters.scanned += 1;
                if !held.contains(digest) {
                    short.insert(partition);
                    missing.push((digest.clone(), record.size));
                }
            }
            if page.len() < RECORD_PAGE {
                break;
            }
            cursor = page.last().map(|(digest, _)| digest.clone());
        }
        self.metrics.partitions_under_replicated.set(short.len() as i64);
        if !missing.is_empty() {
            tracing::info!(
                missing = missing.len(),
                partitions = short.len(),
                dry_run,
                "repair: this node lacks recorded blobs"
            );
        }
        let mut pacer = Pacer::new(self.copy_rate);
        for (digest, size) in missing {
            if dry_run {
                counters.blobs += 1;
                counters.bytes += size;
                continue;
            }
            match self.fetch(&digest).await {
                Ok(copied) => {
                    counters.blobs += 1;
                    counters.bytes += copied;
                    self.metrics.repair_copied_blobs.inc();
                    self.metrics.repair_copied_bytes.inc_by(copied);
                    pacer.spend(copied).await;
                }
                Err(error) => {
                    tracing::warn!(%digest, %error, "repair: no replica could supply the blob");
                    counters.failed += 1;
                }
            }
        }
        if !dry_run && counters.failed == 0 {
            self.metrics.partitions_under_replicated.set(0);
        }
        Ok(counters)
    }

    /// Re-hashes every local copy; quarantines and replaces corrupt ones.
    pub async fn scrub(&self, dry_run: bool) -> Result<TaskCounters, MaintainError> {
        let mut counters = TaskCounters::default();
        let mut pacer = Pacer::new(self.scrub_rate);
        for (digest, size) in self.local.list().await? {
            let verdict = self.local.verify(&digest).await?;
            pacer.spend(size).await;
            counters.scanned += 1;
            self.metrics.scrub_verified_bytes.inc_by(size);
            let Verified::Corrupt { actual, .. } = verdict else { continue };
            self.metrics.scrub_corrupt_blobs.inc();
            tracing::error!(%digest, %actual, dry_run, "scrub: a stored copy is corrupt");
            if dry_run {
                counters.blobs += 1;
                counters.bytes += size;
                continue;
            }
            if let Some(path) = self.local.quarantine(&digest).await? {
                tracing::warn!(%digest, path = %path.display(), "scrub: corrupt copy quarantined");
            }
            match self.fetch(&digest).await {
                Ok(copied) => {
                    tracing::info!(%digest, "scrub: corrupt copy replaced from a replica");
                    counters.blobs += 1;
                    counters.bytes += copied;
                }
                Err(error) => {
                    tracing::error!(%digest, %error, "scrub: no replica could replace the corrupt copy");
                    counters.failed += 1;
                }
            }
        }
        Ok(counters)
    }

    /// Drops the copies of partitions this node does not own in the synced
    /// layout, each once every owner holds the blob.
    pub async fn drop_orphans(&self, dry_run: bool) -> Result<TaskCounters, MaintainError> {
        let layout = self.layout()?;
        if layout.is_syncing() {
            return Err(MaintainError::NotReady(format!("layout {} is still syncing", layout.version)));
        }
        let me = self.view.node_id();
        let mut counters = TaskCounters::default();
        let mut pacer = Pacer::new(self.copy_rate);
        for (digest, size) in self.local.list().await? {
            counters.scanned += 1;
            let owners = layout.owners_of(partition_of(&digest, layout.partitions));
            if owners.is_empty() || owners.contains(&me) {
                continue;
            }
            match self.view.layout() {
                Some(now) if now.version == layout.version => {}
                _ => return Err(MaintainError::NotReady("the layout changed; optimize again".into())),
            }
            // A copy without a record (an upload in flight, a collected blob) is
            // not handed to the owners; the reclaimer deals with it.
            if self
                .meta
                .local()
                .blobs()
                .blob(&digest)
                .map_err(|error| MaintainError::Meta(error.to_string()))?
                .is_none()
            {
                continue;
            }
            match self.hand_over(&digest, owners, &mut pacer).await {
                Ok(true) => {}
                Ok(false) => {
                    counters.failed += 1;
                    continue;
                }
                Err(BlobError::NotFound) => continue,
                Err(error) => return Err(error.into()),
            }
            counters.blobs += 1;
            counters.bytes += size;
            if dry_run {
                continue;
            }
            if self.local.delete(&digest).await? {
                self.metrics.orphan_dropped_blobs.inc();
                self.metrics.orphan_dropped_bytes.inc_by(size);
            }
        }
        Ok(counters)
    }

    /// Makes sure every owner holds `digest`, sending this node's copy to an
    /// owner that lacks it; `false` if an owner could not be checked or sent to.
    async fn hand_over(&self, digest: &Digest, owners: &[NodeId], pacer: &mut Pacer) -> Result<bool, BlobError> {
        for owner in owners {
            let Some(addr) = self.view.addr_of(*owner) else { return Ok(false) };
            match send_if_missing(&self.peers, &*self.local, &addr.rpc_addr, digest).await {
                Ok(Some(size)) => pacer.spend(size).await,
                Ok(None) => {}
                Err(BlobError::NotFound) => return Err(BlobError::NotFound),
                Err(error) => {
                    tracing::warn!(owner, %digest, %error, "optimize: an owner could not be checked or sent the copy; keeping it");
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Copies `digest` into the local store from another node ([`sources`]
    /// order). The local store verifies it.
    async fn fetch(&self, digest: &Digest) -> Result<u64, BlobError> {
        let mut last = BlobError::NotFound;
        for node in sources(&self.view, digest) {
            let Some(addr) = self.view.addr_of(node) else { continue };
            let attempt = async {
                let body = self.peers.get(&addr.rpc_addr, digest, None).await?;
                self.local.put(digest, body).await
            };
            match attempt.await {
                Ok(size) => return Ok(size),
                Err(error) => {
                    tracing::debug!(node, %digest, %error, "copy from a replica failed; trying the next");
                    last = error;
                }
            }
        }
        Err(last)
    }
}
