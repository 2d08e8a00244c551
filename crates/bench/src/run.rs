//! One benchmark run: machine limits first, then each registry in turn on a
//! fresh process and data directory, in the order huge blob (so the peak RSS
//! starts from a fresh process), large blobs, small operations.

use std::path::Path;

use anyhow::Context;
use tempfile::TempDir;

use crate::cli::{Plan, Target};
use crate::client::RegistryClient;
use crate::content::{BlobSpec, MIB};
use crate::large::{self, HugeResult};
use crate::limits::{self, Limits};
use crate::ops::{self, OpKind, PhaseResult};
use crate::registry::{self, RunningRegistry, ADMIN_PASSWORD, ADMIN_USER};
use crate::report::{MachineLoad, RegistryResult, Report};

/// Repository of the large blobs.
const LARGE_REPO: &str = "bench/large";
/// Repository of the huge blob.
const HUGE_REPO: &str = "bench/huge";
/// Repository of the small-operation fixtures.
const SMALL_REPO: &str = "bench/small";
/// Seed offsets that keep the three content families apart.
const HUGE_SEED_OFFSET: u64 = 1 << 32;
const SMALL_SEED_OFFSET: u64 = 1 << 33;
/// A 1-minute load average above this means something else is using the machine.
const BUSY_LOAD_AVERAGE: f64 = 1.0;

/// Runs everything `plan` asks for.
pub async fn run(plan: &Plan) -> anyhow::Result<Report> {
    for &target in &plan.targets {
        registry::ensure_installed(target, plan)?;
    }
    let root = create_work_dir(plan.work_dir.as_deref(), "flotilla-bench-")?;
    let load_average_1m_start = limits::load_average_1m();
    warn_if_busy(load_average_1m_start);
    let limits = measure_limits(root.path(), plan.probe_bytes).await?;
    let (large_blobs, huge_blob) = prepare_content(plan).await?;
    let mut results = Vec::new();
    for &target in &plan.targets {
        let result = bench_registry(target, plan, root.path(), &large_blobs, huge_blob.as_ref(), &limits).await?;
        results.push(result);
        flush_page_cache_writes();
    }
    let machine =
        MachineLoad { cores: limits::cores(), load_average_1m_start, load_average_1m_end: limits::load_average_1m() };
    release_work_dir(root, plan.keep_work_dir);
    Ok(Report { plan: plan.clone(), limits, machine, results })
}

/// A fresh work dir named `prefix…` under `parent` (default: the system temp dir).
pub(crate) fn create_work_dir(parent: Option<&Path>, prefix: &str) -> anyhow::Result<TempDir> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix);
    let root = match parent {
        Some(dir) => builder.tempdir_in(dir),
        None => builder.tempdir(),
    }
    .context("creating the work dir")?;
    progress(format!("work dir {}", root.path().display()));
    Ok(root)
}

/// Removes the work dir, or keeps it (`--keep-work-dir`) and says where it is.
pub(crate) fn release_work_dir(root: TempDir, keep: bool) {
    if keep {
        progress(format!("kept the work dir {}", root.keep().display()));
    }
}

pub(crate) async fn measure_limits(dir: &Path, probe_bytes: u64) -> anyhow::Result<Limits> {
    progress(format!("machine limits: {} MiB fsync'd write, {} MiB sha256", probe_bytes / MIB, probe_bytes / MIB));
    flush_page_cache_writes();
    let dir = dir.to_owned();
    let limits = tokio::task::spawn_blocking(move || limits::measure(&dir, probe_bytes)).await??;
    progress(format!(
        "  disk {:.1} MiB/s, sha256 {:.1} MiB/s",
        limits.disk_fsync_write_mib_s, limits.sha256_single_core_mib_s
    ));
    flush_page_cache_writes();
    Ok(limits)
}

/// The large blobs' and the huge blob's digests, computed once for every registry.
async fn prepare_content(plan: &Plan) -> anyhow::Result<(Vec<BlobSpec>, Option<BlobSpec>)> {
    progress("computing digests of the generated content");
    let large_blobs = large::blob_specs(plan.seed, plan.large.blobs, plan.large.blob_bytes).await?;
    let huge_blob = match plan.huge_bytes {
        Some(size) => {
            let seed = plan.seed + HUGE_SEED_OFFSET;
            Some(tokio::task::spawn_blocking(move || BlobSpec::new(seed, size)).await?)
        }
        None => None,
    };
    Ok((large_blobs, huge_blob))
}

/// Starts `target`, measures it, stops it and deletes its data.
async fn bench_registry(
    target: Target,
    plan: &Plan,
    root: &Path,
    large_blobs: &[BlobSpec],
    huge_blob: Option<&BlobSpec>,
    limits: &Limits,
) -> anyhow::Result<RegistryResult> {
    progress(format!("[{}] starting", target.name()));
    let registry = RunningRegistry::start(target, plan, root).await?;
    let result = measure_registry(&registry, plan, large_blobs, huge_blob, limits)
        .await
        .with_context(|| format!("benchmarking {}; its log ends:\n{}", target.name(), registry.log_tail()));
    let data_dir = registry.data_dir.clone();
    drop(registry);
    std::fs::remove_dir_all(&data_dir).with_context(|| format!("removing {}", data_dir.display()))?;
    result
}

async fn measure_registry(
    registry: &RunningRegistry,
    plan: &Plan,
    large_blobs: &[BlobSpec],
    huge_blob: Option<&BlobSpec>,
    limits: &Limits,
) -> anyhow::Result<RegistryResult> {
    let name = registry.target.name();
    let pool = plan.ops.concurrency.max(plan.large.streams) as usize;
    let client = RegistryClient::new(&registry.base_url, ADMIN_USER, ADMIN_PASSWORD, pool)?;
    let huge = match huge_blob {
        Some(blob) => Some(measure_huge(&client, registry, blob).await?),
        None => None,
    };
    progress(format!("[{name}] pushing {} × {} MiB", large_blobs.len(), plan.large.blob_bytes / MIB));
    let push = large::push_all(&client, LARGE_REPO, large_blobs, plan.large.streams).await?;
    progress(format!("[{name}]   push {:.1} MiB/s; pulling", push.mib_s));
    let pull = large::pull_all(&client, LARGE_REPO, large_blobs, plan.large.streams).await?;
    progress(format!("[{name}]   pull {:.1} MiB/s", pull.mib_s));
    let phases = measure_small_ops(&client, plan, name).await?;
    Ok(RegistryResult {
        target: registry.target,
        push,
        pull,
        phases,
        huge,
        ingest_efficiency: push.mib_s / limits.ingest_ceiling_mib_s(),
    })
}

async fn measure_huge(
    client: &RegistryClient,
    registry: &RunningRegistry,
    blob: &BlobSpec,
) -> anyhow::Result<HugeResult> {
    let name = registry.target.name();
    progress(format!("[{name}] streaming a {} MiB blob in, watching peak RSS", blob.size / MIB));
    let huge = large::huge_push(client, HUGE_REPO, blob, registry.pid()).await?;
    progress(format!(
        "[{name}]   {:.1} MiB/s, peak RSS {:.1} → {:.1} MiB",
        huge.push.mib_s, huge.peak_rss_before_mib, huge.peak_rss_after_mib
    ));
    flush_page_cache_writes();
    Ok(huge)
}

async fn measure_small_ops(client: &RegistryClient, plan: &Plan, name: &str) -> anyhow::Result<Vec<PhaseResult>> {
    progress(format!("[{name}] uploading {} small blobs and {} manifests", plan.ops.small_blobs, plan.ops.manifests));
    let fixtures = ops::seed_fixtures(client, SMALL_REPO, &plan.ops, plan.seed + SMALL_SEED_OFFSET).await?;
    let mut phases = Vec::new();
    for kind in OpKind::ALL {
        let probes = ops::probes(client, SMALL_REPO, &fixtures, kind);
        let phase = ops::run_phase(client, kind, probes, plan.ops.concurrency, plan.ops.phase()).await?;
        progress(format!(
            "[{name}]   {}: {:.0} ops/s, p50 {:.2} ms, p99 {:.2} ms, {} errors",
            kind.label(),
            phase.ops_per_sec,
            phase.p50_ms,
            phase.p99_ms,
            phase.errors
        ));
        phases.push(phase);
    }
    Ok(phases)
}

/// Busy cores make both registries look slower, unevenly: say so up front.
pub(crate) fn warn_if_busy(load_average_1m: Option<f64>) {
    if let Some(load) = load_average_1m.filter(|load| *load > BUSY_LOAD_AVERAGE) {
        progress(format!(
            "warning: 1-minute load average {load:.2}: other work shares the cores; results will be noisy"
        ));
    }
}

/// Writes back dirty pages so one phase does not pay for the previous one's writes.
pub(crate) fn flush_page_cache_writes() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
}

/// A progress line on stderr (stdout carries only the report).
pub(crate) fn progress(message: impl AsRef<str>) {
    eprintln!("flotilla-bench: {}", message.as_ref());
}
