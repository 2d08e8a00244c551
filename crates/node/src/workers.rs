//! Background workers of a node, each named, with cooperative shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use flotilla_raft::client::now_ms;
use flotilla_raft::MetaClient;
use flotilla_storage::blob_store::BlobStore;
use flotilla_storage::upload::Uploads;

use crate::telemetry::Metrics;

/// How often the Raft and store gauges are refreshed.
const METRICS_INTERVAL: Duration = Duration::from_secs(5);
/// How often the local store is listed for the blob gauges (a full listing).
const STORE_SCAN_INTERVAL: Duration = Duration::from_secs(60);
/// How often expired upload sessions are swept.
const UPLOAD_SWEEP_INTERVAL: Duration = Duration::from_secs(300);

/// What the workers need.
pub struct Workers {
    pub meta: MetaClient,
    pub blobs: Arc<dyn BlobStore>,
    pub uploads: Arc<Uploads>,
    pub metrics: Arc<Metrics>,
    pub upload_expiry: Duration,
}

/// Starts every worker; each stops when `shutdown` is cancelled.
pub fn spawn_all(workers: Workers, shutdown: CancellationToken) -> Vec<JoinHandle<()>> {
    let Workers { meta, blobs, uploads, metrics, upload_expiry } = workers;
    let raft_metrics = metrics.clone();
    vec![
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
    ]
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
