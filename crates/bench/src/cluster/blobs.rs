//! Large-blob pushes to the cluster: the same streamed POST / PATCH / PUT as
//! the single-node benchmark ([`RegistryClient::push_blob`]), blob `i` sent
//! to node `i mod n`, `streams` at a time. The node streams every byte to the
//! blob's R owners, so on one machine the disk writes R bytes per byte pushed:
//! the result is set next to the fsync'd disk bandwidth ÷ R.

use std::time::Instant;

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use super::stats::ratio;
use crate::client::RegistryClient;
use crate::content::BlobSpec;
use crate::large::Throughput;

/// The push and what it is compared with.
#[derive(Debug, Clone, Serialize)]
pub struct BlobsResult {
    pub push: Throughput,
    /// R: owners of every blob (the layout's replication factor).
    pub replicas: u32,
    /// fsync'd sequential disk write MiB/s ÷ R.
    pub disk_share_mib_s: f64,
    /// push MiB/s ÷ `disk_share_mib_s`.
    pub ratio: Option<f64>,
}

/// Pushes every blob, spread over `nodes`, `streams` at a time.
pub async fn measure(
    nodes: &[RegistryClient],
    repo: &str,
    blobs: &[BlobSpec],
    streams: u64,
    replicas: u32,
    disk_mib_s: f64,
) -> anyhow::Result<BlobsResult> {
    let started = Instant::now();
    futures::stream::iter(blobs.iter().enumerate())
        .map(|(index, blob)| {
            let client = &nodes[index % nodes.len()];
            async move {
                client
                    .push_blob(repo, blob)
                    .await
                    .with_context(|| format!("pushing {} to {}", blob.digest, client.url("")))
            }
        })
        .buffer_unordered(streams as usize)
        .try_collect::<Vec<()>>()
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    let bytes = blobs.iter().map(|blob| blob.size).sum();
    let push = Throughput::new(bytes, seconds);
    let disk_share_mib_s = disk_share(disk_mib_s, replicas);
    Ok(BlobsResult { push, replicas, disk_share_mib_s, ratio: ratio(push.mib_s, disk_share_mib_s) })
}

/// What one copy of each byte may use of a disk that takes `replicas` copies.
pub fn disk_share(disk_mib_s: f64, replicas: u32) -> f64 {
    disk_mib_s / f64::from(replicas.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_owner_writes_to_the_same_disk() {
        assert_eq!(disk_share(300.0, 3), 100.0);
        assert_eq!(disk_share(300.0, 0), 300.0);
        assert_eq!(ratio(150.0, disk_share(300.0, 3)), Some(1.5));
    }
}
