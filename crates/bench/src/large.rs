//! Large blobs: aggregate push and pull throughput over concurrent streams, and
//! the registry's peak RSS while one huge blob streams in.

use std::time::Instant;

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::client::{PullCheck, RegistryClient};
use crate::content::{BlobSpec, GIB, MIB};
use crate::limits::mib_per_sec;
use crate::memory;
use crate::process_cpu;

/// Bytes moved, the wall time it took and, where measured, the CPU time the
/// registry used meanwhile.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Throughput {
    pub bytes: u64,
    pub seconds: f64,
    pub mib_s: f64,
    pub registry_cpu_seconds: Option<f64>,
}

impl Throughput {
    pub fn new(bytes: u64, seconds: f64) -> Self {
        Throughput { bytes, seconds, mib_s: mib_per_sec(bytes, seconds), registry_cpu_seconds: None }
    }

    /// The registry's CPU seconds per GiB moved.
    pub fn registry_cpu_per_gib(&self) -> Option<f64> {
        let gib = self.bytes as f64 / GIB as f64;
        self.registry_cpu_seconds.filter(|_| gib > 0.0).map(|seconds| seconds / gib)
    }
}

/// Runs `phase` and records the CPU time process `pid` used during it.
pub async fn with_registry_cpu(
    pid: u32,
    phase: impl std::future::Future<Output = anyhow::Result<Throughput>>,
) -> anyhow::Result<Throughput> {
    let before = process_cpu::cpu_seconds(pid)?;
    let mut throughput = phase.await?;
    throughput.registry_cpu_seconds = Some(process_cpu::cpu_seconds(pid)? - before);
    Ok(throughput)
}

/// The same measurement repeated: every round, and the median the report quotes.
#[derive(Debug, Clone, Serialize)]
pub struct Rounds {
    /// The middle round's MiB/s (the mean of the two middle ones for an even count).
    pub median_mib_s: f64,
    pub slowest_mib_s: f64,
    pub fastest_mib_s: f64,
    /// The median over the rounds of the registry's CPU seconds per GiB,
    /// when every round measured it.
    pub median_registry_cpu_per_gib: Option<f64>,
    pub rounds: Vec<Throughput>,
}

impl Rounds {
    /// Summarizes at least one round.
    pub fn of(rounds: Vec<Throughput>) -> Self {
        let rates: Vec<f64> = rounds.iter().map(|round| round.mib_s).collect();
        let cpu: Option<Vec<f64>> = rounds.iter().map(Throughput::registry_cpu_per_gib).collect();
        let by_rate = sorted(rates);
        Rounds {
            median_mib_s: median(&by_rate),
            slowest_mib_s: by_rate[0],
            fastest_mib_s: by_rate[by_rate.len() - 1],
            median_registry_cpu_per_gib: cpu.map(|cpu| median(&sorted(cpu))),
            rounds,
        }
    }
}

fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}

/// The middle of sorted `values` (the mean of the two middle ones for an even count).
fn median(values: &[f64]) -> f64 {
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
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

/// Pulls and checks every blob, `streams` at a time; aggregate throughput.
pub async fn pull_all(
    client: &RegistryClient,
    repo: &str,
    blobs: &[BlobSpec],
    streams: u64,
    check: PullCheck,
) -> anyhow::Result<Throughput> {
    let started = Instant::now();
    futures::stream::iter(blobs)
        .map(|blob| async move {
            client.pull_blob(repo, blob, check).await.with_context(|| format!("pulling {}", blob.digest))
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rounds(rates: &[f64]) -> Rounds {
        Rounds::of(rates.iter().map(|&rate| Throughput::new((rate * MIB as f64) as u64, 1.0)).collect())
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        let odd = rounds(&[300.0, 100.0, 200.0]);
        assert_eq!((odd.median_mib_s, odd.slowest_mib_s, odd.fastest_mib_s), (200.0, 100.0, 300.0));
        let even = rounds(&[400.0, 100.0, 200.0, 300.0]);
        assert_eq!(even.median_mib_s, 250.0);
        assert_eq!(rounds(&[42.0]).median_mib_s, 42.0);
        assert_eq!(odd.median_registry_cpu_per_gib, None);
    }

    #[test]
    fn registry_cpu_is_per_gib_and_its_median_needs_every_round() {
        let round = |cpu: Option<f64>| Throughput { registry_cpu_seconds: cpu, ..Throughput::new(2 * GIB, 4.0) };
        assert_eq!(round(Some(1.0)).registry_cpu_per_gib(), Some(0.5));
        let all = Rounds::of(vec![round(Some(3.0)), round(Some(1.0)), round(Some(2.0))]);
        assert_eq!(all.median_registry_cpu_per_gib, Some(1.0));
        assert_eq!(Rounds::of(vec![round(Some(3.0)), round(None)]).median_registry_cpu_per_gib, None);
    }
}
