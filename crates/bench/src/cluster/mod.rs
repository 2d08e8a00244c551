//! `flotilla-bench cluster`: starts a 3- or 5-node Flotilla cluster on
//! loopback (node `k` on `127.0.0.(k+1)`, data under the work dir) and
//! measures what a cluster adds over one node, each next to the machine's
//! context (cores, load, fsync'd disk bandwidth):
//!
//! 1. follower-read scaling: manifest GET/HEAD by tag sent to the leader only,
//!    then spread over every node ([`reads`]);
//! 2. tag + manifest writes per second from many clients spread over the
//!    nodes, followers forwarding to the leader ([`writes`]);
//! 3. large-blob pushes with R copies on one disk, against disk ÷ R
//!    ([`blobs`]);
//! 4. leader failover: SIGKILL the leader, time until a write succeeds again,
//!    restart it, repeat ([`failover`]);
//! 5. garbage collection of many unreferenced blobs under a push workload
//!    ([`gc`]);
//! 6. repair of a follower that lost its blob store, and rebalancing onto
//!    one more node, against the disk's bandwidth ([`maintenance`]; it leaves
//!    the cluster one node larger, so it runs last).
//!
//! The nodes are processes of the `flotilla` binary ([`nodes`]); the cluster
//! counts as formed when the leader sees every node as an alive voter and the
//! layout synced ([`state`]). See `docs/benchmarks.md`.

pub mod blobs;
pub mod cli;
pub mod failover;
pub mod fill;
pub mod gc;
pub mod maintenance;
pub mod nodes;
pub mod reads;
pub mod report;
pub mod state;
pub mod stats;
pub mod writes;

use std::time::Instant;

use anyhow::Context;

use self::cli::{ClusterArgs, ClusterPlan, Phase};
use self::nodes::{LocalCluster, NodeLaunch};
use self::report::ClusterReport;
use crate::client::RegistryClient;
use crate::content::{BlobSpec, MIB};
use crate::large;
use crate::limits;
use crate::registry::{ADMIN_PASSWORD, ADMIN_USER};
use crate::report::MachineLoad;
use crate::run::{create_work_dir, flush_page_cache_writes, measure_limits, release_work_dir, warn_if_busy};

/// Repositories of the measurements.
const READS_REPO: &str = "bench/reads";
const WRITES_REPO: &str = "bench/writes";
const LARGE_REPO: &str = "bench/large";
const FAILOVER_REPO: &str = "bench/failover";
const GC_REPO: &str = "bench/gc";
const MAINTENANCE_REPO: &str = "bench/maintenance";
/// Seed offsets that keep the content families apart.
const READS_SEED_OFFSET: u64 = 1 << 33;
const WRITES_SEED_OFFSET: u64 = 1 << 34;
const FAILOVER_SEED_OFFSET: u64 = 1 << 35;
const GC_SEED_OFFSET: u64 = 1 << 36;
const MAINTENANCE_SEED_OFFSET: u64 = 1 << 37;

/// Runs `flotilla-bench cluster` and prints its report.
pub async fn main(args: ClusterArgs) -> anyhow::Result<()> {
    let plan = ClusterPlan::from(args);
    // On Ctrl-C the run is dropped: the nodes are killed, the work dir removed.
    let report = tokio::select! {
        report = run(&plan) => report?,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
    };
    if plan.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_markdown());
    }
    Ok(())
}

/// Runs everything `plan` asks for.
pub async fn run(plan: &ClusterPlan) -> anyhow::Result<ClusterReport> {
    let started = Instant::now();
    anyhow::ensure!(
        plan.flotilla_bin.is_file(),
        "no flotilla binary at {} (build it with `cargo build --release -p flotilla-node --bin flotilla`, or pass \
         --flotilla-bin)",
        plan.flotilla_bin.display()
    );
    let root = create_work_dir(plan.work_dir.as_deref(), "flotilla-bench-cluster-")?;
    let load_average_1m_start = limits::load_average_1m();
    warn_if_busy(load_average_1m_start);
    let limits = measure_limits(root.path(), plan.probe_bytes).await?;
    let large_blobs = if plan.runs(Phase::Blobs) {
        progress("computing digests of the large blobs");
        large::blob_specs(plan.seed, plan.large.blobs, plan.large.blob_bytes).await?
    } else {
        Vec::new()
    };

    progress(format!("starting {} nodes", plan.nodes));
    let forming = Instant::now();
    let extra_args = plan.copy_rate.map(|rate| vec!["--copy-rate".into(), rate.to_string().into()]).unwrap_or_default();
    let launch = NodeLaunch {
        binary: plan.flotilla_bin.clone(),
        extra_args,
        quiet_logs: plan.quiet_logs,
        ready_timeout: plan.ready_timeout(),
        cpus: plan.node_cpus,
    };
    let mut cluster = LocalCluster::start(launch, plan.nodes, root.path()).await?;
    let formed = state::wait_formed(&mut cluster, plan.ready_timeout()).await?;
    let formation_secs = forming.elapsed().as_secs_f64();
    progress(format!(
        "  formed in {formation_secs:.1} s: node {} leads, R = {}; pids {:?}",
        formed.leader,
        formed.replication_factor,
        cluster.nodes.iter().filter_map(|node| node.pid()).collect::<Vec<_>>()
    ));

    let mut report = ClusterReport {
        plan: plan.clone(),
        machine: MachineLoad { cores: limits::cores(), load_average_1m_start, load_average_1m_end: None },
        limits,
        replication_factor: formed.replication_factor,
        formation_secs,
        reads: None,
        writes: None,
        blobs: None,
        failover: None,
        gc: None,
        maintenance: None,
        total_secs: 0.0,
    };
    measure(&mut cluster, plan, &large_blobs, &mut report).await?;
    report.machine.load_average_1m_end = limits::load_average_1m();
    report.total_secs = started.elapsed().as_secs_f64();
    drop(cluster);
    release_work_dir(root, plan.keep_work_dir);
    Ok(report)
}

/// The four measurements, each on a formed cluster, in order.
async fn measure(
    cluster: &mut LocalCluster,
    plan: &ClusterPlan,
    large_blobs: &[BlobSpec],
    report: &mut ClusterReport,
) -> anyhow::Result<()> {
    let pool = plan.reads.concurrency.max(plan.writers).max(plan.large.streams) as usize;
    let clients = cluster
        .nodes
        .iter()
        .map(|node| RegistryClient::new(&node.base_url, ADMIN_USER, ADMIN_PASSWORD, pool))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let timeout = plan.ready_timeout();
    if plan.runs(Phase::Reads) {
        let leader = state::wait_formed(cluster, timeout).await?.leader;
        progress(format!(
            "follower reads: {} clients, {} s per phase, {} rounds",
            plan.reads.concurrency, plan.reads.phase_secs, plan.read_rounds
        ));
        let reads = reads::measure(
            &clients,
            leader,
            leader as usize - 1,
            READS_REPO,
            &plan.reads,
            plan.read_rounds,
            seed(plan, READS_SEED_OFFSET),
        )
        .await
        .with_context(|| format!("follower reads\n{}", cluster.log_tails()))?;
        report.reads = Some(reads);
        flush_page_cache_writes();
    }
    if plan.runs(Phase::Writes) {
        state::wait_formed(cluster, timeout).await?;
        progress(format!("writes: {} clients for {} s, spread over the nodes", plan.writers, plan.write_secs));
        let template = writes::ManifestTemplate::push(&clients[0], WRITES_REPO, seed(plan, WRITES_SEED_OFFSET))
            .await
            .context("pushing the written manifests' blobs")?;
        let writes = writes::measure(&clients, WRITES_REPO, &template, plan.writers, plan.write_phase())
            .await
            .with_context(|| format!("writes\n{}", cluster.log_tails()))?;
        progress(format!(
            "  {:.0} ops/s, p50 {:.2} ms, p99 {:.2} ms, {} errors",
            writes.ops_per_sec, writes.p50_ms, writes.p99_ms, writes.errors
        ));
        report.writes = Some(writes);
        flush_page_cache_writes();
    }
    if plan.runs(Phase::Blobs) {
        let formed = state::wait_formed(cluster, timeout).await?;
        progress(format!(
            "large blobs: pushing {} × {} MiB over {} streams, spread over the nodes",
            large_blobs.len(),
            plan.large.blob_bytes / MIB,
            plan.large.streams
        ));
        let blobs = blobs::measure(
            &clients,
            LARGE_REPO,
            large_blobs,
            plan.large.streams,
            formed.replication_factor,
            report.limits.disk_fsync_write_mib_s,
        )
        .await
        .with_context(|| format!("large-blob push\n{}", cluster.log_tails()))?;
        progress(format!(
            "  {:.1} MiB/s; disk ÷ {} = {:.1} MiB/s",
            blobs.push.mib_s, blobs.replicas, blobs.disk_share_mib_s
        ));
        report.blobs = Some(blobs);
        flush_page_cache_writes();
    }
    if plan.runs(Phase::Failover) {
        state::wait_formed(cluster, timeout).await?;
        progress(format!(
            "failover: {} trials, a write every {} ms",
            plan.failover.trials, plan.failover.write_interval_ms
        ));
        let template = writes::ManifestTemplate::push(&clients[0], FAILOVER_REPO, seed(plan, FAILOVER_SEED_OFFSET))
            .await
            .context("pushing the failover manifests' blobs")?;
        let failover = failover::measure(cluster, &clients, FAILOVER_REPO, &template, &plan.failover, timeout)
            .await
            .with_context(|| format!("failover\n{}", cluster.log_tails()))?;
        report.failover = Some(failover);
    }
    if plan.runs(Phase::Gc) {
        let formed = state::wait_formed(cluster, timeout).await?;
        progress(format!(
            "gc: {} unreferenced blobs, then {} pushing clients alone for {} s and during the collection",
            plan.gc_blobs, plan.writers, plan.write_secs
        ));
        let gc = gc::measure(
            &clients,
            GC_REPO,
            plan.gc_blobs,
            plan.writers,
            plan.write_phase(),
            formed.replication_factor,
            seed(plan, GC_SEED_OFFSET),
        )
        .await
        .with_context(|| format!("gc\n{}", cluster.log_tails()))?;
        progress(format!(
            "  collected {} in {:.1} s, reclaimed in {:.1} s; pushes {:.0}/s alone, {:.0}/s during",
            gc.collected, gc.collect_secs, gc.reclaim_secs, gc.baseline.ops_per_sec, gc.during.ops_per_sec
        ));
        report.gc = Some(gc);
    }
    if plan.runs(Phase::Maintenance) {
        let formed = state::wait_formed(cluster, timeout).await?;
        progress(format!(
            "maintenance: {} × {} MiB, a follower's store lost and repaired, then a node added",
            plan.maintenance_blobs,
            cli::MAINTENANCE_BLOB_BYTES / MIB
        ));
        let maintenance = maintenance::measure(
            cluster,
            &clients,
            MAINTENANCE_REPO,
            plan.maintenance_blobs,
            cli::MAINTENANCE_BLOB_BYTES,
            formed.replication_factor,
            plan.copy_rate,
            seed(plan, MAINTENANCE_SEED_OFFSET),
        )
        .await
        .with_context(|| format!("maintenance\n{}", cluster.log_tails()))?;
        progress(format!(
            "  repair {:.1} MiB/s; rebalance {:.1} MiB/s, {:.3} × ideal; disk {:.1} MiB/s",
            maintenance.repair.mib_s,
            maintenance.rebalance.mib_s,
            maintenance.rebalance_ratio,
            report.limits.disk_fsync_write_mib_s
        ));
        report.maintenance = Some(maintenance);
    }
    Ok(())
}

fn seed(plan: &ClusterPlan, offset: u64) -> u64 {
    plan.seed.wrapping_add(offset)
}

/// A progress line on stderr (stdout carries only the report).
fn progress(message: impl AsRef<str>) {
    crate::run::progress(message);
}
