//! Large blobs: aggregate push and pull throughput over concurrent streams, and
//! the registry's peak RSS while one huge blob streams in.

use std::time::Instant;

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::client::RegistryClient;
use crate::content::{BlobSpec, MIB};
use crate::limits::mib_per_sec;
use crate::memory;

/// Bytes moved and the wall time it took.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Throughput {
    pub bytes: u64,
    pub seconds: f64,
    pub mib_s: f64,
}

impl Throughput {
    fn new(bytes: u64, seconds: f64) -> Self {
        Throughput { bytes, seconds, mib_s: mib_per_sec(bytes, seconds) }
    }
}

/// Peak RSS of the registry around a huge-blob push.
#[derive(Debug, Clone, Serialize)]
pub struct HugeResult {
    pub push: Throughput,
    /// `VmHWM` just before the push (after a peak reset where the kernel allows it).
    pub peak_rss_before_mib: f64,
    /// `VmHWM` just after the push.
    pub peak_rss_after_mib: f64,
    /// Whether `/proc/<pid>/clear_refs` reset the peak before the push.
    pub peak_was_reset: bool,
}

impl HugeResult {
    pub fn peak_rss_growth_mib(&self) -> f64 {
        self.peak_rss_after_mib - self.peak_rss_before_mib
    }
}

/// Precomputes the specs (digests) of `count` blobs of `size` bytes, seeded
/// from `seed`, on blocking threads.
pub async fn blob_specs(seed: u64, count: u64, size: u64) -> anyhow::Result<Vec<BlobSpec>> {
    let tasks = (0..count).map(|index| tokio::task::spawn_blocking(move || BlobSpec::new(seed + index, size)));
    futures::future::try_join_all(tasks).await.context("computing blob digests")
}

/// Pushes every blob, `streams` at a time; aggregate throughput.
pub async fn push_all(
    client: &RegistryClient,
    repo: &str,
    blobs: &[BlobSpec],
    streams: u64,
) -> anyhow::Result<Throughput> {
    let started = Instant::now();
    futures::stream::iter(blobs)
        .map(|blob| async move { client.push_blob(repo, blob).await.with_context(|| format!("pushing {}", blob.digest)) })
        .buffer_unordered(streams as usize)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(Throughput::new(total_bytes(blobs), started.elapsed().as_secs_f64()))
}

/// Pulls and verifies every blob, `streams` at a time; aggregate throughput.
pub async fn pull_all(
    client: &RegistryClient,
    repo: &str,
    blobs: &[BlobSpec],
    streams: u64,
) -> anyhow::Result<Throughput> {
    let started = Instant::now();
    futures::stream::iter(blobs)
        .map(|blob| async move { client.pull_blob(repo, blob).await.with_context(|| format!("pulling {}", blob.digest)) })
        .buffer_unordered(streams as usize)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(Throughput::new(total_bytes(blobs), started.elapsed().as_secs_f64()))
}

/// Pushes `blob` in one stream while watching the peak RSS of process `pid`.
pub async fn huge_push(client: &RegistryClient, repo: &str, blob: &BlobSpec, pid: u32) -> anyhow::Result<HugeResult> {
    let peak_was_reset = memory::reset_peak_rss(pid);
    let before = memory::peak_rss_bytes(pid)?;
    let started = Instant::now();
    client.push_blob(repo, blob).await.context("pushing the huge blob")?;
    let push = Throughput::new(blob.size, started.elapsed().as_secs_f64());
    let after = memory::peak_rss_bytes(pid)?;
    Ok(HugeResult {
        push,
        peak_rss_before_mib: before as f64 / MIB as f64,
        peak_rss_after_mib: after as f64 / MIB as f64,
        peak_was_reset,
    })
}

fn total_bytes(blobs: &[BlobSpec]) -> u64 {
    blobs.iter().map(|blob| blob.size).sum()
}
