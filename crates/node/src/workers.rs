//! Background workers of a node, each named, with cooperative shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use flotilla_raft::client::now_ms;
use flotilla_raft::MetaClient;
use flotilla_storage::blob_store::BlobStore;
use flotilla_storage::upload::Uploads;
use flotilla_storage::Engine;

use crate::telemetry::{Metrics, RecordSums};

/// How often the Raft and store gauges are refreshed.
const METRICS_INTERVAL: Duration = Duration::from_secs(5);
/// How often the local store is listed for the blob gauges (a full listing).
const STORE_SCAN_INTERVAL: Duration = Duration::from_secs(60);
/// How often the blob records are summed for the referenced/unreferenced gauges (a full scan).
const RECORD_SCAN_INTERVAL: Duration = Duration::from_secs(300);
/// Blob records read per page by that scan.
const RECORD_PAGE: usize = 5000;
/// How often expired upload sessions are swept.
const UPLOAD_SWEEP_INTERVAL: Duration = Duration::from_secs(300);

/// What the workers need.
pub struct Workers {
    pub meta: MetaClient,
    pub blobs: Arc<dyn BlobStore>,
    pub uploads: Arc<Uploads>,
    pub metrics: Arc<Metrics>,
    pub upload_expiry: Duration,
    /// The RocksDB engine, for compaction.
    pub engine: Engine,
    /// Snapshot at least this often when anything was applied (`None`: only by log count).
    pub snapshot_interval: Option<Duration>,
    /// Compact RocksDB this often (`None`: never by time).
    pub compaction_interval: Option<Duration>,
}

/// Starts every worker; each stops when `shutdown` is cancelled.
pub fn spawn_all(workers: Workers, shutdown: CancellationToken) -> Vec<JoinHandle<()>> {
    let Workers { meta, blobs, uploads, metrics, upload_expiry, engine, snapshot_interval, compaction_interval } =
        workers;
    let raft_metrics = metrics.clone();
    let mut handles = Vec::new();
    if let Some(every) = snapshot_interval {
        let (meta, metrics) = (meta.clone(), metrics.clone());
        handles.push(spawn_periodic("raft-snapshot", every, shutdown.clone(), move || {
            let (meta, metrics) = (meta.clone(), metrics.clone());
            async move { snapshot_if_behind(&meta, &metrics).await }
        }));
    }
    if let Some(every) = compaction_interval {
        let metrics = metrics.clone();
        handles.push(spawn_periodic("compaction", every, shutdown.clone(), move || {
            let (engine, metrics) = (engine.clone(), metrics.clone());
            async move {
                let started = std::time::Instant::now();
                match tokio::task::spawn_blocking(move || engine.compact()).await {
                    Ok(Ok(())) => {
                        metrics.observe_compaction();
                        tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "compacted rocksdb");
                    }
                    Ok(Err(error)) => tracing::warn!(%error, "compacting rocksdb failed"),
                    Err(error) => tracing::warn!(%error, "the compaction task failed"),
                }
            }
        }));
    }
    handles.push(spawn_periodic("record-metrics", RECORD_SCAN_INTERVAL, shutdown.clone(), {
        let (meta, metrics) = (meta.clone(), metrics.clone());
        move || {
            let (meta, metrics) = (meta.clone(), metrics.clone());
            async move {
                let summed = tokio::task::spawn_blocking(move || sum_records(&meta)).await;
                match summed {
                    Ok(Ok(sums)) => metrics.observe_records(sums),
                    Ok(Err(error)) => tracing::warn!(%error, "summing blob records failed"),
                    Err(error) => tracing::warn!(%error, "the record scan failed"),
                }
            }
        }
    }));
    handles.extend([
        spawn_periodic("raft-metrics", METRICS_INTERVAL, shutdown.clone(), move || {
            raft_metrics.observe_raft(&meta);
            async {}
        }),
        spawn_periodic("store-metrics", STORE_SCAN_INTERVAL, shutdown.clone(), move || {
            let (blobs, metrics) = (blobs.clone(), metrics.clone());
            async move {
                match blobs.list().await {
                    Ok(list) => metrics.observe_store(list.len() as u64, list.iter().map(|(_, size)| size).sum()),
                    Err(error) => tracing::warn!(%error, "listing the blob store failed"),
                }
            }
        }),
        spawn_periodic("upload-sweeper", UPLOAD_SWEEP_INTERVAL, shutdown, move || {
            let uploads = uploads.clone();
            async move {
                let cutoff = now_ms().saturating_sub(upload_expiry.as_millis() as u64);
                match uploads.expire(cutoff).await {
                    Ok(0) => {}
                    Ok(removed) => tracing::info!(removed, "expired upload sessions removed"),
                    Err(error) => tracing::warn!(%error, "sweeping upload sessions failed"),
                }
            }
        }),
    ]);
    handles
}

/// Sums the replicated blob records (what the cluster stores once, whatever the replication).
fn sum_records(meta: &MetaClient) -> Result<RecordSums, flotilla_model::StoreError> {
    let mut sums = RecordSums::default();
    let mut cursor = None;
    loop {
        let page = meta.local().blobs().blobs(cursor.as_ref(), RECORD_PAGE)?;
        for (_, record) in &page {
            sums.blobs += 1;
            if record.refcount > 0 {
                sums.referenced_bytes += record.size;
            } else {
                sums.unreferenced_bytes += record.size;
            }
        }
        if page.len() < RECORD_PAGE {
            return Ok(sums);
        }
        cursor = page.last().map(|(digest, _)| digest.clone());
    }
}

/// Takes a Raft snapshot when entries were applied since the last one; openraft
/// then purges the log before it (keeping `max_in_snapshot_log_to_keep`).
async fn snapshot_if_behind(meta: &MetaClient, metrics: &Metrics) {
    let raft = meta.raft().metrics().borrow().clone();
    let applied = raft.last_applied.map(|id| id.index);
    let snapshot = raft.snapshot.map(|id| id.index);
    if applied.is_none() || applied <= snapshot {
        return;
    }
    match meta.raft().trigger().snapshot().await {
        Ok(()) => {
            metrics.observe_timed_snapshot();
            tracing::debug!(?applied, ?snapshot, "timed raft snapshot requested");
        }
        Err(error) => tracing::warn!(%error, "requesting a raft snapshot failed"),
    }
}

fn spawn_periodic<F, Fut>(
    name: &'static str,
    every: Duration,
    shutdown: CancellationToken,
    mut tick: F,
) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        tracing::debug!(worker = name, "started");
        let mut interval = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = interval.tick() => tick().await,
            }
        }
        tracing::debug!(worker = name, "stopped");
    })
}
