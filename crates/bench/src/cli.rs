//! Command-line flags and the [`Plan`] they resolve to (`--quick` changes the
//! defaults of the sizes the user did not set).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;

use crate::cluster::cli::ClusterArgs;
use crate::content::{GIB, MIB};
use crate::cpu_limit::parse_cores;

/// Full-run and `--quick` defaults.
const LARGE_BLOBS: (u64, u64) = (8, 4);
const LARGE_BLOB_MIB: (u64, u64) = (256, 64);
const LARGE_ROUNDS: (u64, u64) = (3, 1);
const OP_PHASE_SECS: (u64, u64) = (10, 3);
const PROBE_MIB: (u64, u64) = (1024, 256);
const HUGE_BLOB_GIB: (u64, u64) = (5, 1);

/// A registry under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    Flotilla,
    DockerRegistry,
}

impl Target {
    /// Every target, in report-column order.
    pub const ALL: [Target; 2] = [Target::Flotilla, Target::DockerRegistry];

    pub fn name(self) -> &'static str {
        match self {
            Target::Flotilla => "flotilla",
            Target::DockerRegistry => "docker-registry",
        }
    }
}

/// Benchmarks Flotilla and CNCF distribution 2.8 (`docker-registry`) side by
/// side on loopback with the same client, and prints a markdown table of each
/// metric and the ratio Flotilla/docker-registry. `flotilla-bench cluster`
/// benchmarks a Flotilla cluster instead.
#[derive(Debug, Parser)]
#[command(name = "flotilla-bench", version, args_conflicts_with_subcommands = true)]
pub struct Args {
    /// Without a subcommand: the single-node comparison with docker-registry.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Smoke-run sizes: one round of 4 × 64 MiB blobs, 3 s operation phases, 256 MiB
    /// machine-limit probes, a 1 GiB huge blob (explicit flags still win).
    #[arg(long)]
    pub quick: bool,
    /// Benchmark only this registry (default: both).
    #[arg(long, value_enum)]
    pub only: Option<Target>,
    #[command(flatten)]
    pub common: CommonArgs,
    /// The CNCF distribution binary.
    #[arg(long, default_value = "/usr/bin/docker-registry")]
    pub docker_registry_bin: PathBuf,
    /// Large blobs pushed then pulled [default: 8, quick 4].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub blobs: Option<u64>,
    /// Size of each large blob in MiB [default: 256, quick 64].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=16384))]
    pub blob_mib: Option<u64>,
    /// Rounds of large-blob push and pull, each with new content, the
    /// registries taking turns; the median round is reported [default: 3, quick 1].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=20))]
    pub rounds: Option<u64>,
    /// Concurrent large-blob streams.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub streams: u64,
    /// Concurrent clients of the small-operation phases.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub concurrency: u64,
    /// Seconds each small-operation phase runs [default: 10, quick 3].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub op_seconds: Option<u64>,
    /// Small blobs served by the blob GET/HEAD phases.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub small_blobs: u64,
    /// Size of each small blob in bytes.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=16 * MIB))]
    pub small_blob_bytes: u64,
    /// Tagged manifests served by the manifest GET/HEAD phases.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub manifests: u64,
    /// MiB written (fsync'd) and hashed by the machine-limit probes [default: 1024, quick 256].
    #[arg(long, value_parser = clap::value_parser!(u64).range(4..=65536))]
    pub probe_mib: Option<u64>,
    /// Size in GiB of the blob streamed in while watching peak RSS [default: 5, quick 1].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub huge_gib: Option<u64>,
    /// Skip the huge-blob peak-RSS measurement.
    #[arg(long)]
    pub skip_huge: bool,
    /// Limit each registry to this many cores (a cgroup each with a CPU
    /// quota; needs root); the client is not limited. Each registry then
    /// serves from a CPU budget of its own, as on a machine of its own,
    /// instead of competing with the client for the same cores
    /// [default: unlimited].
    #[arg(long, value_parser = parse_cores)]
    pub registry_cpus: Option<f64>,
    /// Send Flotilla's requests as a non-admin user named by this many
    /// permission targets (one granting read, write and delete on every
    /// repository, the others on repositories the benchmark never touches),
    /// so every request pays a real permission check; 0 (the default) sends
    /// them as `admin`. Needs a Flotilla with the security API.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub user_targets: u64,
}

/// Flags of every mode: the binary, the disk, logging, output, content and patience.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// The flotilla binary [default: $CARGO_TARGET_DIR/release/flotilla].
    #[arg(long, env = "FLOTILLA_BENCH_FLOTILLA_BIN")]
    pub flotilla_bin: Option<PathBuf>,
    /// Where the temporary data directories go (the disk that is measured)
    /// [default: the system temp dir].
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Keep the work dir (the registries' data and logs) after the run
    /// instead of removing it, and print where it is.
    #[arg(long)]
    pub keep_work_dir: bool,
    /// Run every registry process with warning-level logs and no access log
    /// (default: the shipped logging).
    #[arg(long)]
    pub quiet_logs: bool,
    /// Print the results as JSON instead of markdown.
    #[arg(long)]
    pub json: bool,
    /// Seed of all generated content.
    #[arg(long, default_value_t = 0x5eed)]
    pub seed: u64,
    /// Seconds a registry (or a cluster) may take to become ready.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub ready_timeout_secs: u64,
}

/// The other benchmarks.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Starts a 3- or 5-node Flotilla cluster on loopback and measures follower-read
    /// scaling, concurrent manifest writes, large-blob pushes with R copies, and
    /// leader failover (see docs/benchmarks.md).
    Cluster(ClusterArgs),
}

/// Sizes and counts of the large-blob push/pull phase.
#[derive(Debug, Clone, Serialize)]
pub struct LargePlan {
    pub rounds: u64,
    pub blobs: u64,
    pub blob_bytes: u64,
    pub streams: u64,
}

/// Shape of the small-operation phases.
#[derive(Debug, Clone, Serialize)]
pub struct OpsPlan {
    pub concurrency: u64,
    pub phase_secs: u64,
    pub small_blobs: u64,
    pub small_blob_bytes: u64,
    pub manifests: u64,
}

impl OpsPlan {
    pub fn phase(&self) -> Duration {
        Duration::from_secs(self.phase_secs)
    }
}

/// Everything one run does, resolved from [`Args`].
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub targets: Vec<Target>,
    pub flotilla_bin: PathBuf,
    pub docker_registry_bin: PathBuf,
    pub work_dir: Option<PathBuf>,
    pub keep_work_dir: bool,
    pub large: LargePlan,
    pub ops: OpsPlan,
    pub probe_bytes: u64,
    /// `None` when the huge-blob measurement is skipped.
    pub huge_bytes: Option<u64>,
    pub quiet_logs: bool,
    /// Cores each registry may use, when limited.
    pub registry_cpus: Option<f64>,
    #[serde(skip)]
    pub json: bool,
    pub seed: u64,
    pub ready_timeout_secs: u64,
    /// Flotilla's requests as a non-admin user with this many permission targets (0: as admin).
    #[serde(default)]
    pub user_targets: u64,
}

impl Plan {
    pub fn ready_timeout(&self) -> Duration {
        Duration::from_secs(self.ready_timeout_secs)
    }
}

impl From<Args> for Plan {
    fn from(args: Args) -> Self {
        let pick = |explicit: Option<u64>, (full, quick): (u64, u64)| {
            explicit.unwrap_or(if args.quick { quick } else { full })
        };
        let targets = match args.only {
            Some(target) => vec![target],
            None => Target::ALL.to_vec(),
        };
        Plan {
            targets,
            flotilla_bin: args.common.flotilla_bin.clone().unwrap_or_else(default_flotilla_bin),
            docker_registry_bin: args.docker_registry_bin.clone(),
            work_dir: args.common.work_dir.clone(),
            keep_work_dir: args.common.keep_work_dir,
            large: LargePlan {
                rounds: pick(args.rounds, LARGE_ROUNDS),
                blobs: pick(args.blobs, LARGE_BLOBS),
                blob_bytes: pick(args.blob_mib, LARGE_BLOB_MIB) * MIB,
                streams: args.streams,
            },
            ops: OpsPlan {
                concurrency: args.concurrency,
                phase_secs: pick(args.op_seconds, OP_PHASE_SECS),
                small_blobs: args.small_blobs,
                small_blob_bytes: args.small_blob_bytes,
                manifests: args.manifests,
            },
            probe_bytes: pick(args.probe_mib, PROBE_MIB) * MIB,
            huge_bytes: (!args.skip_huge).then(|| pick(args.huge_gib, HUGE_BLOB_GIB) * GIB),
            quiet_logs: args.common.quiet_logs,
            registry_cpus: args.registry_cpus,
            json: args.common.json,
            seed: args.common.seed,
            ready_timeout_secs: args.common.ready_timeout_secs,
            user_targets: args.user_targets,
        }
    }
}

/// `$CARGO_TARGET_DIR/release/flotilla`, the target dir defaulting to the
/// project's `$HOME/.cache/flotilla-target`.
pub fn default_flotilla_bin() -> PathBuf {
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
        home.join(".cache/flotilla-target")
    });
    target_dir.join("release/flotilla")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(args: &[&str]) -> Plan {
        Plan::from(Args::try_parse_from(std::iter::once("flotilla-bench").chain(args.iter().copied())).unwrap())
    }

    #[test]
    fn quick_shrinks_only_the_unset_sizes() {
        let quick = plan(&["--quick", "--blobs", "2"]);
        assert_eq!(quick.large.blobs, 2);
        assert_eq!(quick.large.blob_bytes, 64 * MIB);
        assert_eq!(quick.ops.phase_secs, 3);
        let full = plan(&[]);
        assert_eq!((full.large.blobs, full.large.blob_bytes, full.large.rounds), (8, 256 * MIB, 3));
        assert_eq!(quick.large.rounds, 1);
        assert_eq!(full.huge_bytes, Some(5 * GIB));
        assert_eq!(full.targets, Target::ALL.to_vec());
    }

    #[test]
    fn only_and_skip_huge() {
        let plan = plan(&["--only", "docker-registry", "--skip-huge"]);
        assert_eq!(plan.targets, vec![Target::DockerRegistry]);
        assert_eq!(plan.huge_bytes, None);
    }

    #[test]
    fn no_subcommand_is_the_comparison() {
        let args = Args::try_parse_from(["flotilla-bench", "--quick"]).unwrap();
        assert!(args.command.is_none());
        let args = Args::try_parse_from(["flotilla-bench", "cluster", "--quick"]).unwrap();
        assert!(matches!(args.command, Some(Command::Cluster(_))));
        assert!(Args::try_parse_from(["flotilla-bench", "--blobs", "2", "cluster"]).is_err());
    }

    #[test]
    fn sizes_are_bounded() {
        assert!(Args::try_parse_from(["flotilla-bench", "--op-seconds", "0"]).is_err());
        assert!(Args::try_parse_from(["flotilla-bench", "--blobs", "100000"]).is_err());
    }
}
