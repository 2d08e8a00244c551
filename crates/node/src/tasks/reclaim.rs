//! Every node's reclaimer: deletes the local copies of collected blobs.
//!
//! It follows the tombstones that garbage collection leaves in the replicated
//! state, in epoch order, from wherever it got to (from the oldest kept
//! tombstone after a restart, so a node that was down catches up). A copy is
//! deleted only if the blob still has no record and the file was stored before
//! the collection, less a margin for clock skew between nodes: a copy written
//! by an upload that began after the collection is kept, and that upload
//! records the blob again.
//!
//! A node that was away longer than tombstones are kept, and uploads that
//! never finished, leave stray copies with no record; a slow sweep deletes
//! those once they are older than [`STRAY_AGE`].

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use flotilla_raft::MetaClient;
use flotilla_storage::blob_store::BlobStore;
use flotilla_storage::fs::{FsBlobStore, Reclaimed};
use flotilla_storage::Digest;

use crate::telemetry::Metrics;

/// How often the reclaimer looks for new tombstones.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Tombstones read per page.
const PAGE: usize = 1000;
/// How often stray copies are swept.
const STRAY_SWEEP_INTERVAL: Duration = Duration::from_secs(3600);
/// A copy with no record is stray once it is this old: far longer than any
/// upload takes from storing its bytes to recording the blob.
pub const STRAY_AGE: Duration = Duration::from_secs(24 * 3600);

/// Deletes this node's copies of collected blobs.
pub struct Reclaimer {
    pub meta: MetaClient,
    pub local: Arc<FsBlobStore>,
    /// How far clocks of different nodes may disagree (`gc_clock_margin`).
    pub clock_margin: Duration,
    /// At most this many copies deleted per second (`gc_reclaim_rate`); `None` = as fast as possible.
    pub rate: Option<u32>,
    pub metrics: Arc<Metrics>,
}

/// Where the reclaimer got to: the last tombstone handled.
type Position = Option<(u64, Digest)>;

impl Reclaimer {
    /// Runs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut position: Position = None;
        let mut seen_epoch = None;
        let mut interval = tokio::time::interval(POLL_INTERVAL);
        // Not at start: a node that was away first catches up with the cluster.
        let mut stray_sweep =
            tokio::time::interval_at(tokio::time::Instant::now() + STRAY_SWEEP_INTERVAL, STRAY_SWEEP_INTERVAL);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = interval.tick() => {}
                _ = stray_sweep.tick() => {
                    if let Err(error) = self.sweep_strays().await {
                        tracing::warn!(%error, "sweeping stray copies failed");
                    }
                    continue;
                }
            }
            let epoch = match self.meta.local().blobs().gc_state() {
                Ok(gc) => gc.epoch,
                Err(error) => {
                    tracing::warn!(%error, "reading the gc state failed");
                    continue;
                }
            };
            if seen_epoch == Some(epoch) {
                continue;
            }
            match self.follow(&mut position, &shutdown).await {
                Ok(()) => seen_epoch = Some(epoch),
                Err(error) => tracing::warn!(%error, "reclaiming collected blobs failed; will retry"),
            }
        }
    }

    /// Handles every tombstone after `position`.
    async fn follow(&self, position: &mut Position, shutdown: &CancellationToken) -> Result<(), String> {
        loop {
            let after = position.as_ref().map(|(epoch, digest)| (*epoch, digest));
            let page = self.meta.local().blobs().tombstones(after, PAGE).map_err(|error| error.to_string())?;
            if shutdown.is_cancelled() {
                return Ok(());
            }
            let started = Instant::now();
            let deleted = self.reclaim(&page).await?;
            // A deletion budget per second, so that reclaiming never starves the pushes sharing the disk.
            if let Some(rate) = self.rate.filter(|rate| *rate > 0) {
                let budget = Duration::from_secs_f64(deleted as f64 / f64::from(rate));
                tokio::time::sleep(budget.saturating_sub(started.elapsed())).await;
            }
            if let Some((epoch, digest, _)) = page.last() {
                *position = Some((*epoch, digest.clone()));
            }
            if page.len() < PAGE {
                return Ok(());
            }
        }
    }

    /// Deletes the local copies of a page of tombstones `(epoch, digest, collected_ms)`; how many it deleted.
    async fn reclaim(&self, tombstones: &[(u64, Digest, u64)]) -> Result<u64, String> {
        let mut doomed = Vec::with_capacity(tombstones.len());
        for (_, digest, collected_ms) in tombstones {
            if self.meta.local().blobs().blob(digest).map_err(|error| error.to_string())?.is_some() {
                continue; // Recorded again since: a later upload's copy.
            }
            let collected = UNIX_EPOCH + Duration::from_millis(*collected_ms);
            doomed.push((digest.clone(), collected.checked_sub(self.clock_margin).unwrap_or(UNIX_EPOCH)));
        }
        let outcomes = self.local.delete_all_if_older(&doomed).await.map_err(|error| error.to_string())?;
        let mut deleted = 0;
        for ((digest, _), outcome) in doomed.iter().zip(outcomes) {
            match outcome {
                Reclaimed::Deleted(bytes) => {
                    self.metrics.observe_reclaimed(bytes);
                    deleted += 1;
                }
                Reclaimed::Recent => tracing::info!(%digest, "kept a copy stored after its collection"),
                Reclaimed::Absent => {}
            }
        }
        Ok(deleted)
    }

    /// Deletes copies that have no record and are older than [`STRAY_AGE`]. The
    /// records are read after a linearizable barrier, so a replica that lags
    /// (a node back from a long absence) never takes a recorded blob for a stray.
    async fn sweep_strays(&self) -> Result<(), String> {
        let cutoff = SystemTime::now().checked_sub(STRAY_AGE).unwrap_or(UNIX_EPOCH);
        let listed = self.local.list().await.map_err(|error| error.to_string())?;
        let catalog = self.meta.read().await.map_err(|error| error.to_string())?;
        let mut removed = 0u64;
        for (digest, _) in listed {
            if catalog.blobs().blob(&digest).map_err(|error| error.to_string())?.is_some() {
                continue;
            }
            if let Reclaimed::Deleted(bytes) =
                self.local.delete_if_older(&digest, cutoff).await.map_err(|error| error.to_string())?
            {
                self.metrics.observe_reclaimed(bytes);
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::info!(removed, "deleted stray copies with no record");
        }
        Ok(())
    }
}
