//! Repair and rebalancing rates against the disk's bandwidth.
//!
//! 1. Fill: push `blobs` blobs of `blob_bytes` (unreferenced, so nothing else
//!    touches them; the phase runs before GC), R copies each.
//! 2. Repair: kill a follower, delete its blob store (a disk lost, Raft kept),
//!    start it again and run a `repair` task; the rate is the bytes the task
//!    copied over the task's run time.
//! 3. Rebalance: start one more (storage) node; the new layout syncs (the old
//!    owners push the new node its share) and the optimize task that follows
//!    drops the copies the old owners no longer own. Reported: bytes moved
//!    (`flotilla_rebalance_copied_bytes_total`) against the ideal (the new
//!    node's fair share, R ÷ (N + 1) of the data), the sync's rate, and how
//!    long the optimize took.
//!
//! Both copy at most `copy_rate` per node (the nodes' default 100 MiB/s
//! unless the run passes `--copy-rate`); both write every byte once, fsync'd,
//! on the same disk the senders read from.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde_json::{json, Value};

use super::fill::{push_random_blobs, sum_metric, Upload};
use super::nodes::LocalCluster;
use super::state;
use crate::client::RegistryClient;
use crate::content::MIB;

/// The nodes' own `copy_rate` when the run does not set one.
const NODE_DEFAULT_COPY_RATE: u64 = 100 * MIB;
/// Concurrent clients filling the store.
const FILL_CLIENTS: u64 = 8;
/// How often tasks and layouts are polled.
const POLL: Duration = Duration::from_millis(100);
/// The longest a repair, sync or optimize may take before the phase fails.
const STEP_TIMEOUT: Duration = Duration::from_secs(1800);

/// A copy run: bytes, seconds, and the rate.
#[derive(Debug, Clone, Serialize)]
pub struct CopyRun {
    pub bytes: u64,
    pub secs: f64,
    pub mib_s: f64,
}

impl CopyRun {
    fn new(bytes: u64, secs: f64) -> Self {
        CopyRun { bytes, secs, mib_s: bytes as f64 / MIB as f64 / secs.max(1e-9) }
    }
}

/// What the maintenance phase measured.
#[derive(Debug, Clone, Serialize)]
pub struct MaintenanceResult {
    pub blobs: u64,
    pub blob_bytes: u64,
    /// The data once (each blob counted once).
    pub logical_bytes: u64,
    /// The nodes' copy rate cap, MiB/s per node (`None`: unpaced, `--copy-rate 0`).
    pub copy_rate_mib_s: Option<f64>,
    /// A follower that lost its blob store, refilled by a repair task.
    pub repair: CopyRun,
    /// One node added: what the sync moved, and its rate.
    pub rebalance: CopyRun,
    /// The new node's fair share: logical bytes × R ÷ nodes after the join.
    pub rebalance_ideal_bytes: u64,
    /// moved ÷ ideal.
    pub rebalance_ratio: f64,
    /// Bytes the optimize task dropped from the old owners, and how long it ran.
    pub optimize_dropped_bytes: u64,
    pub optimize_secs: f64,
}

/// Runs the phase on a formed cluster with replication factor `replicas`.
#[allow(clippy::too_many_arguments)]
pub async fn measure(
    cluster: &mut LocalCluster,
    clients: &[RegistryClient],
    repo: &str,
    blobs: u64,
    blob_bytes: u64,
    replicas: u32,
    copy_rate: Option<u64>,
    seed: u64,
) -> anyhow::Result<MaintenanceResult> {
    push_random_blobs(clients, repo, blobs, blob_bytes as usize, FILL_CLIENTS, Upload::PostPut, seed).await?;
    let logical_bytes = blobs * blob_bytes;
    let timeout = cluster.ready_timeout();

    // Repair: a follower loses its disk's blobs.
    let leader = state::wait_formed(cluster, timeout).await?.leader;
    let victim = cluster.ids().into_iter().find(|id| *id != leader).context("a follower")?;
    super::progress(format!("  repair: node {victim} loses its blob store"));
    cluster.kill(victim)?;
    let store = cluster.node(victim).data_dir().join("blobs").join("blobs");
    std::fs::remove_dir_all(&store).with_context(|| format!("removing {}", store.display()))?;
    cluster.restart(victim).await?;
    state::wait_formed(cluster, timeout).await?;
    let (task, secs) = run_task(&clients[0], "repair").await?;
    let copied = task["bytes"].as_u64().unwrap_or(0);
    ensure!(task["failed"] == 0, "the repair could not copy everything: {task}");
    ensure!(copied >= logical_bytes, "the repair copied {copied} bytes, less than the {logical_bytes} lost");
    let repair = CopyRun::new(copied, secs);

    // Rebalance: one more node.
    let before = rebalanced_bytes(clients).await?;
    let dropped_before = dropped_bytes(clients).await?;
    let version = layout(&clients[0]).await?["version"].as_u64().unwrap_or(0);
    super::progress("  rebalance: adding a node");
    let added = cluster.add_node().await?;
    let joined = Instant::now();
    let mut all = clients.to_vec();
    all.push(RegistryClient::new(
        &cluster.node(added).base_url,
        crate::registry::ADMIN_USER,
        crate::registry::ADMIN_PASSWORD,
        4,
    )?);
    loop {
        let layout = layout(&clients[0]).await?;
        let synced = layout["sync_state"] == "synced" && layout["version"].as_u64() > Some(version);
        if synced && layout["replicas"].get(added.to_string()).is_some() {
            break;
        }
        ensure!(joined.elapsed() < STEP_TIMEOUT, "the new layout did not sync: {layout}");
        tokio::time::sleep(POLL).await;
    }
    let sync_secs = joined.elapsed().as_secs_f64();
    let moved = (rebalanced_bytes(&all).await? - before) as u64;
    let optimize_started = Instant::now();
    wait_for_optimize(&clients[0]).await?;
    let optimize_secs = optimize_started.elapsed().as_secs_f64();
    let nodes_after = all.len() as u64;
    let ideal = logical_bytes * u64::from(replicas).min(nodes_after) / nodes_after;
    Ok(MaintenanceResult {
        blobs,
        blob_bytes,
        logical_bytes,
        copy_rate_mib_s: match copy_rate.unwrap_or(NODE_DEFAULT_COPY_RATE) {
            0 => None,
            rate => Some(rate as f64 / MIB as f64),
        },
        repair,
        rebalance: CopyRun::new(moved, sync_secs),
        rebalance_ideal_bytes: ideal,
        rebalance_ratio: moved as f64 / ideal.max(1) as f64,
        optimize_dropped_bytes: (dropped_bytes(&all).await? - dropped_before) as u64,
        optimize_secs,
    })
}

/// Starts a task of `kind` and waits for it to finish: the task and its run time.
async fn run_task(node: &RegistryClient, kind: &str) -> anyhow::Result<(Value, f64)> {
    let body = json!({"kind": kind});
    let task = node.admin_json(Method::POST, "/_cluster/tasks", Some(body), StatusCode::ACCEPTED).await?;
    let id = task["id"].as_str().context("the task has no id")?.to_owned();
    let started = Instant::now();
    loop {
        let task = node.admin_json(Method::GET, &format!("/_cluster/tasks/{id}"), None, StatusCode::OK).await?;
        match task["state"].as_str() {
            Some("finished") => return Ok((task, started.elapsed().as_secs_f64())),
            Some(state @ ("failed" | "cancelled")) => anyhow::bail!("the {kind} task {state}: {task}"),
            _ if started.elapsed() > STEP_TIMEOUT => anyhow::bail!("the {kind} task did not finish: {task}"),
            _ => tokio::time::sleep(POLL).await,
        }
    }
}

/// Waits until no optimize task is scheduled or running, and at least one finished.
async fn wait_for_optimize(node: &RegistryClient) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let tasks = node.admin_json(Method::GET, "/_cluster/tasks", None, StatusCode::OK).await?;
        let optimizes: Vec<&Value> =
            tasks["tasks"].as_array().into_iter().flatten().filter(|task| task["kind"] == "optimize").collect();
        let active = optimizes.iter().any(|task| matches!(task["state"].as_str(), Some("scheduled" | "running")));
        if !active && optimizes.iter().any(|task| task["state"] == "finished") {
            return Ok(());
        }
        ensure!(started.elapsed() < STEP_TIMEOUT, "the optimize task did not finish");
        tokio::time::sleep(POLL).await;
    }
}

async fn layout(node: &RegistryClient) -> anyhow::Result<Value> {
    node.admin_json(Method::GET, "/_cluster/layout", None, StatusCode::OK).await
}

async fn rebalanced_bytes(nodes: &[RegistryClient]) -> anyhow::Result<f64> {
    sum_metric(nodes, "flotilla_rebalance_copied_bytes_total").await
}

async fn dropped_bytes(nodes: &[RegistryClient]) -> anyhow::Result<f64> {
    sum_metric(nodes, "flotilla_orphan_dropped_bytes_total").await
}
