//! Online garbage collection under a push workload.
//!
//! 1. Fill: push `blobs` small blobs that no manifest references, from many
//!    clients spread over the nodes.
//! 2. Baseline: the push workload alone for the write-phase length. One push
//!    is a small image: a fresh 4 KiB layer (`POST ?digest=`) and a manifest
//!    over it and a shared config, tagged.
//! 3. Collection: start a GC task (grace 1 s, so the workload's layers, which
//!    a manifest references within milliseconds, are never candidates) with
//!    the same workload running, until the task has finished and every node's
//!    reclaimer has deleted its copies (`flotilla_gc_reclaimed_blobs_total`).
//!
//! Reported: how long the collection and the reclaiming took, and the
//! workload's throughput during them against the baseline.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use bytes::Bytes;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde_json::json;

use super::fill::{push_random_blobs, sum_metric, Upload};
use super::stats::{LatencyStats, Tally};
use crate::client::{RegistryClient, OCI_MANIFEST};

/// Size of each unreferenced blob.
const FILL_BLOB_BYTES: usize = 1024;
/// Concurrent clients pushing the unreferenced blobs.
const FILL_CLIENTS: u64 = 32;
/// Size of each workload layer.
const LAYER_BYTES: usize = 4096;
/// The config every workload image shares.
const CONFIG: &[u8] = b"{\"architecture\":\"amd64\",\"os\":\"linux\"}";
/// The grace period of the collection.
const GRACE_SECONDS: u64 = 1;
/// Nodes keep copies stored less than `gc_clock_margin` (2 s) before a collection.
const PAST_CLOCK_MARGIN: Duration = Duration::from_millis(2500);
/// How often the task and the reclaim counters are polled.
const POLL: Duration = Duration::from_millis(100);
/// The workload's target during a collection: this share of its baseline throughput.
pub const THROUGHPUT_TARGET: f64 = 0.8;
/// The collection of 100 000 blobs should end within this.
pub const DURATION_TARGET_SECS: f64 = 60.0;

/// What the GC phase measured.
#[derive(Debug, Clone, Serialize)]
pub struct GcResult {
    /// Unreferenced blobs pushed, and how fast.
    pub blobs: u64,
    pub fill_blobs_per_sec: f64,
    /// Blobs the task reports collected.
    pub collected: u64,
    /// Task created → finished, seconds.
    pub collect_secs: f64,
    /// Task created → every node deleted its copies, seconds.
    pub reclaim_secs: f64,
    /// The push workload alone, and while the collection and reclaiming ran.
    pub baseline: LatencyStats,
    pub during: LatencyStats,
    /// during ÷ baseline pushes per second.
    pub throughput_ratio: Option<f64>,
}

/// Runs the phase on a formed cluster of `nodes` with replication factor `replicas`.
pub async fn measure(
    nodes: &[RegistryClient],
    repo: &str,
    blobs: u64,
    writers: u64,
    baseline_for: Duration,
    replicas: u32,
    seed: u64,
) -> anyhow::Result<GcResult> {
    let filling = Instant::now();
    let garbage = format!("{repo}-garbage");
    push_random_blobs(nodes, &garbage, blobs, FILL_BLOB_BYTES, FILL_CLIENTS, Upload::Post, seed).await?;
    let fill_blobs_per_sec = blobs as f64 / filling.elapsed().as_secs_f64();

    let config = nodes[0].post_bytes(repo, Bytes::from_static(CONFIG)).await?;
    let baseline = run_workload(nodes, repo, &config, writers, "base", Workload::For(baseline_for)).await?;
    let already = reclaimed(nodes).await?;
    tokio::time::sleep(PAST_CLOCK_MARGIN).await;

    let stop = Arc::new(AtomicBool::new(false));
    let workload = {
        let (nodes, repo, config, stop) = (nodes.to_vec(), repo.to_owned(), config.clone(), stop.clone());
        tokio::spawn(async move { run_workload(&nodes, &repo, &config, writers, "gc", Workload::Until(stop)).await })
    };
    let started = Instant::now();
    let body = json!({"kind": "gc", "grace_seconds": GRACE_SECONDS});
    let task = nodes[0].admin_json(Method::POST, "/_cluster/tasks", Some(body), StatusCode::ACCEPTED).await?;
    let id = task["id"].as_str().context("the task has no id")?.to_owned();
    let (collected, collect_secs) = loop {
        let task = nodes[0].admin_json(Method::GET, &format!("/_cluster/tasks/{id}"), None, StatusCode::OK).await?;
        match task["state"].as_str() {
            Some("finished") => break (task["blobs"].as_u64().unwrap_or(0), started.elapsed().as_secs_f64()),
            Some(state @ ("failed" | "cancelled")) => anyhow::bail!("the gc task {state}: {task}"),
            _ => tokio::time::sleep(POLL).await,
        }
    };
    let copies = blobs as f64 * f64::from(replicas);
    while reclaimed(nodes).await? - already < copies {
        ensure!(started.elapsed() < Duration::from_secs(600), "the nodes did not delete every collected copy");
        tokio::time::sleep(POLL).await;
    }
    let reclaim_secs = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let during = workload.await??;
    let throughput_ratio = (baseline.ops_per_sec > 0.0).then(|| during.ops_per_sec / baseline.ops_per_sec);
    Ok(GcResult {
        blobs,
        fill_blobs_per_sec,
        collected,
        collect_secs,
        reclaim_secs,
        baseline,
        during,
        throughput_ratio,
    })
}

/// Copies of collected blobs the nodes deleted so far.
async fn reclaimed(nodes: &[RegistryClient]) -> anyhow::Result<f64> {
    sum_metric(nodes, "flotilla_gc_reclaimed_blobs_total").await
}

/// How long the workload runs.
enum Workload {
    For(Duration),
    Until(Arc<AtomicBool>),
}

impl Workload {
    fn done(&self, started: Instant) -> bool {
        match self {
            Workload::For(duration) => started.elapsed() >= *duration,
            Workload::Until(stop) => stop.load(Ordering::Relaxed),
        }
    }
}

/// `writers` clients pushing small images, client `w` on `nodes[w % len]`.
async fn run_workload(
    nodes: &[RegistryClient],
    repo: &str,
    config: &str,
    writers: u64,
    phase: &'static str,
    until: Workload,
) -> anyhow::Result<LatencyStats> {
    let until = Arc::new(until);
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|writer| {
            let client = nodes[writer as usize % nodes.len()].clone();
            let (repo, config, until) = (repo.to_owned(), config.to_owned(), until.clone());
            tokio::spawn(async move {
                let mut tally = Tally::default();
                let mut seq = 0u64;
                while !until.done(started) {
                    let sent = Instant::now();
                    match push_image(&client, &repo, &config, &format!("{phase}-{writer}-{seq}")).await {
                        Ok(()) => tally.success(sent.elapsed()),
                        Err(error) => tally.failure(|| format!("push on {}: {error:#}", client.url(""))),
                    }
                    seq += 1;
                }
                tally
            })
        })
        .collect();
    let mut merged = Tally::default();
    for task in tasks {
        merged.absorb(task.await?);
    }
    Ok(merged.into_stats(started.elapsed().as_secs_f64()))
}

/// One small image: a fresh layer, then a manifest over it, tagged `tag`.
async fn push_image(client: &RegistryClient, repo: &str, config: &str, tag: &str) -> anyhow::Result<()> {
    let mut layer = tag.as_bytes().to_vec();
    layer.resize(LAYER_BYTES, 0x5a);
    let layer_digest = client.post_bytes(repo, Bytes::from(layer)).await?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": CONFIG.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": LAYER_BYTES}],
    });
    client.put_manifest(repo, tag, Bytes::from(serde_json::to_vec(&manifest)?)).await
}
