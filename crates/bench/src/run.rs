//! One benchmark run: machine limits first; then every registry is started side
//! by side, each on a fresh process and data directory, and measured in the order
//! huge blob (so the peak RSS starts from a fresh process), large blobs in
//! interleaved rounds, small operations.
//!
//! The large-blob rounds take turns: round 1 pushes and pulls on flotilla then
//! docker-registry, round 2 the other way round, and so on, each round with new
//! content; the report gives each registry's median round. A virtual disk's
//! bandwidth drifts by several times over minutes (host caches), so registries
//! measured one after the other would be compared at different disk speeds.

use std::path::Path;

use anyhow::Context;
use tempfile::TempDir;

use crate::cli::{Plan, Target};
use crate::client::{PullCheck, RegistryClient};
use crate::content::{BlobSpec, MIB};
use crate::large::{self, HugeResult, Rounds, Throughput};
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
/// Seed offsets that keep the content families apart: large blobs of round r
/// use `seed + r × LARGE_ROUND_SEED_STRIDE + index` (at most 256 blobs a round).
const LARGE_ROUND_SEED_STRIDE: u64 = 1 << 16;
const HUGE_SEED_OFFSET: u64 = 1 << 32;
const SMALL_SEED_OFFSET: u64 = 1 << 33;
/// A 1-minute load average above this means something else is using the machine.
const BUSY_LOAD_AVERAGE: f64 = 1.0;

/// A registry under test and the client that talks to it.
struct Contender {
    registry: RunningRegistry,
    client: RegistryClient,
}

impl Contender {
    fn name(&self) -> &'static str {
        self.registry.target.name()
    }

    /// Adds the registry's log tail to an error of a measurement.
    fn blame<T>(&self, result: anyhow::Result<T>) -> anyhow::Result<T> {
        result.with_context(|| format!("benchmarking {}; its log ends:\n{}", self.name(), self.registry.log_tail()))
    }
}

/// The non-admin account of `--user-targets`.
const BENCH_USER: &str = "bench-user";
const BENCH_USER_PASSWORD: &str = "bench-user-password";

/// Creates [`BENCH_USER`] and `targets` permission targets naming it: the
/// first grants read, write and delete on every repository, the others on
/// repositories the benchmark never touches (rules its checks walk past).
async fn create_bench_user(base_url: &str, targets: u64) -> anyhow::Result<()> {
    use reqwest::{Method, StatusCode};
    progress(format!("[flotilla] creating {BENCH_USER} with {targets} permission targets"));
    let admin = RegistryClient::new(base_url, ADMIN_USER, ADMIN_PASSWORD, 1)?;
    let user = serde_json::json!({"email": "bench@example.com", "password": BENCH_USER_PASSWORD});
    let path = format!("/artifactory/api/security/users/{BENCH_USER}");
    admin.admin_send(Method::PUT, &path, user, StatusCode::CREATED).await?;
    for index in 0..targets {
        let repository = if index == 0 { "ANY".to_owned() } else { format!("untouched-{index}") };
        let target = serde_json::json!({
            "repo": {"repositories": [repository], "include-patterns": ["**"],
                     "actions": {"users": {BENCH_USER: ["read", "write", "delete"]}}}
        });
        let path = format!("/artifactory/api/v2/security/permissions/bench-{index}");
        admin.admin_send(Method::PUT, &path, target, StatusCode::CREATED).await?;
    }
    Ok(())
}

/// Runs everything `plan` asks for.
pub async fn run(plan: &Plan) -> anyhow::Result<Report> {
    for &target in &plan.targets {
        registry::ensure_installed(target, plan)?;
    }
    let root = create_work_dir(plan.work_dir.as_deref(), "flotilla-bench-")?;
    let load_average_1m_start = limits::load_average_1m();
    warn_if_busy(load_average_1m_start);
    let limits = measure_limits(root.path(), plan.probe_bytes).await?;
    let huge_blob = prepare_huge_blob(plan).await?;

    let pool = plan.ops.concurrency.max(plan.large.streams) as usize;
    let mut contenders = Vec::new();
    for &target in &plan.targets {
        progress(format!("[{}] starting", target.name()));
        let registry = RunningRegistry::start(target, plan, root.path()).await?;
        let client = if target == Target::Flotilla && plan.user_targets > 0 {
            create_bench_user(&registry.base_url, plan.user_targets).await?;
            RegistryClient::new(&registry.base_url, BENCH_USER, BENCH_USER_PASSWORD, pool)?
        } else {
            RegistryClient::new(&registry.base_url, ADMIN_USER, ADMIN_PASSWORD, pool)?
        };
        contenders.push(Contender { registry, client });
    }
    let mut huge = Vec::new();
    for contender in &contenders {
        huge.push(match &huge_blob {
            Some(blob) => Some(contender.blame(measure_huge(contender, blob).await)?),
            None => None,
        });
    }
    let large = measure_large_rounds(&contenders, plan).await?;
    let mut results = Vec::new();
    for ((contender, large), huge) in contenders.iter().zip(large).zip(huge) {
        let phases = contender.blame(measure_small_ops(&contender.client, plan, contender.name()).await)?;
        let push = Rounds::of(large.pushes);
        results.push(RegistryResult {
            target: contender.registry.target,
            ingest_efficiency: push.median_mib_s / limits.ingest_ceiling_mib_s(),
            push,
            pull: Rounds::of(large.pulls),
            pull_compared: Rounds::of(large.compared_pulls),
            phases,
            huge,
        });
    }
    drop(contenders);
    let machine =
        MachineLoad { cores: limits::cores(), load_average_1m_start, load_average_1m_end: limits::load_average_1m() };
    release_work_dir(root, plan.keep_work_dir);
    Ok(Report { plan: plan.clone(), limits, machine, results })
}

/// One contender's large-blob throughput, round by round.
#[derive(Default)]
struct LargeRounds {
    pushes: Vec<Throughput>,
    /// Pulls with the digest verified.
    pulls: Vec<Throughput>,
    /// Pulls with the bytes compared to the content.
    compared_pulls: Vec<Throughput>,
}

/// Every round's large-blob throughput, per contender (same order).
async fn measure_large_rounds(contenders: &[Contender], plan: &Plan) -> anyhow::Result<Vec<LargeRounds>> {
    let mut results: Vec<LargeRounds> = contenders.iter().map(|_| LargeRounds::default()).collect();
    for round in 0..plan.large.rounds {
        progress(format!("round {}/{}: computing digests of new content", round + 1, plan.large.rounds));
        let seed = plan.seed + round * LARGE_ROUND_SEED_STRIDE;
        let blobs = large::blob_specs(seed, plan.large.blobs, plan.large.blob_bytes).await?;
        for turn in 0..contenders.len() {
            // Who goes first rotates, so neither always meets the disk fresh.
            let index = (turn + round as usize) % contenders.len();
            let contender = &contenders[index];
            contender.blame(push_then_pull(contender, plan, &blobs, &mut results[index]).await)?;
        }
    }
    Ok(results)
}

/// Pushes `blobs`, pulls them verifying digests, then pulls them comparing bytes.
async fn push_then_pull(
    contender: &Contender,
    plan: &Plan,
    blobs: &[BlobSpec],
    results: &mut LargeRounds,
) -> anyhow::Result<()> {
    let (name, client, streams) = (contender.name(), &contender.client, plan.large.streams);
    let pid = contender.registry.pid();
    flush_page_cache_writes();
    progress(format!("[{name}] pushing {} × {} MiB", blobs.len(), plan.large.blob_bytes / MIB));
    let push = large::with_registry_cpu(pid, large::push_all(client, LARGE_REPO, blobs, streams)).await?;
    progress(format!("[{name}]   push {:.1} MiB/s; pulling", push.mib_s));
    let pull = large::pull_all(client, LARGE_REPO, blobs, streams, PullCheck::Digest);
    let pull = large::with_registry_cpu(pid, pull).await?;
    let compared = large::pull_all(client, LARGE_REPO, blobs, streams, PullCheck::Content);
    let compared = large::with_registry_cpu(pid, compared).await?;
    progress(format!(
        "[{name}]   pull {:.1} MiB/s (digest verified), {:.1} MiB/s (bytes compared)",
        pull.mib_s, compared.mib_s
    ));
    results.pushes.push(push);
    results.pulls.push(pull);
    results.compared_pulls.push(compared);
    Ok(())
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

/// The huge blob's digest, computed once for every registry.
async fn prepare_huge_blob(plan: &Plan) -> anyhow::Result<Option<BlobSpec>> {
    let Some(size) = plan.huge_bytes else { return Ok(None) };
    progress("computing the digest of the huge blob");
    let seed = plan.seed + HUGE_SEED_OFFSET;
    Ok(Some(tokio::task::spawn_blocking(move || BlobSpec::new(seed, size)).await?))
}

async fn measure_huge(contender: &Contender, blob: &BlobSpec) -> anyhow::Result<HugeResult> {
    let name = contender.name();
    flush_page_cache_writes();
    progress(format!("[{name}] streaming a {} MiB blob in, watching peak RSS", blob.size / MIB));
    let huge = large::huge_push(&contender.client, HUGE_REPO, blob, contender.registry.pid()).await?;
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
