//! Flags of `flotilla-bench cluster` and the [`ClusterPlan`] they resolve to
//! (`--quick` changes the defaults of the sizes the user did not set, as in
//! the single-node comparison).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::cli::{default_flotilla_bin, CommonArgs, LargePlan, OpsPlan};
use crate::content::MIB;
use crate::cpu_limit::parse_cores;

/// Full-run and `--quick` defaults.
const OP_PHASE_SECS: (u64, u64) = (10, 3);
const READ_ROUNDS: (u64, u64) = (3, 1);
const WRITE_PHASE_SECS: (u64, u64) = (10, 3);
const LARGE_BLOBS: (u64, u64) = (8, 4);
const LARGE_BLOB_MIB: (u64, u64) = (256, 64);
const PROBE_MIB: (u64, u64) = (1024, 256);
const FAILOVER_TRIALS: (u64, u64) = (20, 5);
const GC_BLOBS: (u64, u64) = (100_000, 10_000);
const MAINTENANCE_BLOBS: (u64, u64) = (256, 64);
/// Size of each blob of the maintenance phase.
pub const MAINTENANCE_BLOB_BYTES: u64 = 4 * MIB;
/// Small blobs the read fixtures' manifests use as layers, and their size.
const READ_FIXTURE_BLOBS: u64 = 4;
const READ_FIXTURE_BLOB_BYTES: u64 = 4096;

/// One measurement of the cluster run, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Reads,
    Writes,
    Blobs,
    Failover,
    Gc,
    Maintenance,
}

/// Starts a Flotilla cluster on loopback (one 127.0.0.x address per node) and
/// measures follower-read scaling, concurrent tag+manifest writes, large-blob
/// pushes with R copies, and leader failover.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// Cluster size; every node is a voter.
    #[arg(long, default_value_t = 3, value_parser = parse_nodes)]
    pub nodes: u64,
    /// Smoke-run sizes: 3 s phases, 4 × 64 MiB blobs, 256 MiB disk probe, 5 failover trials
    /// (explicit flags still win).
    #[arg(long)]
    pub quick: bool,
    #[command(flatten)]
    pub common: CommonArgs,
    /// Concurrent clients of the manifest GET/HEAD phases.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub concurrency: u64,
    /// Seconds each read phase runs [default: 10, quick 3].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub op_seconds: Option<u64>,
    /// Rounds of the read phases: each round measures leader-only and spread
    /// once (in turns, the order alternating), the report gives the median
    /// round of each [default: 3, quick 1].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=99))]
    pub read_rounds: Option<u64>,
    /// Tagged manifests the read phases fetch.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub manifests: u64,
    /// Concurrent clients of the write phase.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub writers: u64,
    /// Seconds the write phase runs [default: 10, quick 3].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub write_seconds: Option<u64>,
    /// Large blobs pushed [default: 8, quick 4].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub blobs: Option<u64>,
    /// Size of each large blob in MiB [default: 256, quick 64].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=16384))]
    pub blob_mib: Option<u64>,
    /// Concurrent large-blob streams.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub streams: u64,
    /// MiB written (fsync'd) and hashed by the machine-limit probes [default: 1024, quick 256].
    #[arg(long, value_parser = clap::value_parser!(u64).range(4..=65536))]
    pub probe_mib: Option<u64>,
    /// Leader kills [default: 20, quick 5].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub failover_trials: Option<u64>,
    /// Milliseconds between the starts of two failover writes.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub failover_write_interval_ms: u64,
    /// Deadline of one failover write, in milliseconds.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub failover_request_timeout_ms: u64,
    /// Seconds a trial may wait for the first write after the kill before it counts as failed.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub failover_trial_timeout_secs: u64,
    /// Unreferenced blobs the garbage-collection phase collects [default: 100000, quick 10000].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub gc_blobs: Option<u64>,
    /// 4 MiB blobs the maintenance phase repairs and rebalances [default: 256, quick 64].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub maintenance_blobs: Option<u64>,
    /// Every node's `--copy-rate` (bytes per second of repair and rebalancing; 0 = unpaced)
    /// [default: the node's own, 100 MiB/s].
    #[arg(long)]
    pub copy_rate: Option<u64>,
    /// Limit every node to this many cores (a cgroup per node with a CPU
    /// quota; needs root), as if each node had a small machine of its own:
    /// on one host, the way to see follower reads scale [default: unlimited].
    #[arg(long, value_parser = parse_cores)]
    pub node_cpus: Option<f64>,
    /// Measurements to leave out (repeatable or comma-separated).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub skip: Vec<Phase>,
}

/// The failover trials.
#[derive(Debug, Clone, Serialize)]
pub struct FailoverPlan {
    pub trials: u64,
    pub write_interval_ms: u64,
    pub request_timeout_ms: u64,
    pub trial_timeout_secs: u64,
}

impl FailoverPlan {
    pub fn write_interval(&self) -> Duration {
        Duration::from_millis(self.write_interval_ms)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn trial_timeout(&self) -> Duration {
        Duration::from_secs(self.trial_timeout_secs)
    }
}

/// Everything a cluster run does, resolved from [`ClusterArgs`].
#[derive(Debug, Clone, Serialize)]
pub struct ClusterPlan {
    pub nodes: u64,
    pub flotilla_bin: PathBuf,
    pub work_dir: Option<PathBuf>,
    pub keep_work_dir: bool,
    /// Read phases; `small_blobs` and `small_blob_bytes` are the fixtures' layers.
    pub reads: OpsPlan,
    pub read_rounds: u64,
    pub writers: u64,
    pub write_secs: u64,
    pub large: LargePlan,
    pub probe_bytes: u64,
    pub failover: FailoverPlan,
    /// Unreferenced blobs of the GC phase.
    pub gc_blobs: u64,
    /// Blobs of the maintenance phase, and the nodes' copy rate.
    pub maintenance_blobs: u64,
    pub copy_rate: Option<u64>,
    /// Cores each node may use, when limited.
    pub node_cpus: Option<f64>,
    pub skip: Vec<Phase>,
    pub quiet_logs: bool,
    #[serde(skip)]
    pub json: bool,
    pub seed: u64,
    pub ready_timeout_secs: u64,
}

impl ClusterPlan {
    pub fn runs(&self, phase: Phase) -> bool {
        !self.skip.contains(&phase)
    }

    pub fn ready_timeout(&self) -> Duration {
        Duration::from_secs(self.ready_timeout_secs)
    }

    pub fn write_phase(&self) -> Duration {
        Duration::from_secs(self.write_secs)
    }
}

impl From<ClusterArgs> for ClusterPlan {
    fn from(args: ClusterArgs) -> Self {
        let pick = |explicit: Option<u64>, (full, quick): (u64, u64)| {
            explicit.unwrap_or(if args.quick { quick } else { full })
        };
        let mut skip = args.skip.clone();
        skip.sort_by_key(|phase| *phase as u8);
        skip.dedup();
        ClusterPlan {
            nodes: args.nodes,
            flotilla_bin: args.common.flotilla_bin.clone().unwrap_or_else(default_flotilla_bin),
            work_dir: args.common.work_dir.clone(),
            keep_work_dir: args.common.keep_work_dir,
            reads: OpsPlan {
                concurrency: args.concurrency,
                phase_secs: pick(args.op_seconds, OP_PHASE_SECS),
                small_blobs: READ_FIXTURE_BLOBS,
                small_blob_bytes: READ_FIXTURE_BLOB_BYTES,
                manifests: args.manifests,
            },
            read_rounds: pick(args.read_rounds, READ_ROUNDS),
            writers: args.writers,
            write_secs: pick(args.write_seconds, WRITE_PHASE_SECS),
            large: LargePlan {
                // One round: the cluster has no peer to take turns with.
                rounds: 1,
                blobs: pick(args.blobs, LARGE_BLOBS),
                blob_bytes: pick(args.blob_mib, LARGE_BLOB_MIB) * MIB,
                streams: args.streams,
            },
            probe_bytes: pick(args.probe_mib, PROBE_MIB) * MIB,
            failover: FailoverPlan {
                trials: pick(args.failover_trials, FAILOVER_TRIALS),
                write_interval_ms: args.failover_write_interval_ms,
                request_timeout_ms: args.failover_request_timeout_ms,
                trial_timeout_secs: args.failover_trial_timeout_secs,
            },
            gc_blobs: pick(args.gc_blobs, GC_BLOBS),
            maintenance_blobs: pick(args.maintenance_blobs, MAINTENANCE_BLOBS),
            copy_rate: args.copy_rate,
            node_cpus: args.node_cpus,
            skip,
            quiet_logs: args.common.quiet_logs,
            json: args.common.json,
            seed: args.common.seed,
            ready_timeout_secs: args.common.ready_timeout_secs,
        }
    }
}

/// `--nodes`: an odd voter count Flotilla supports with more than one node.
fn parse_nodes(value: &str) -> Result<u64, String> {
    match value.parse::<u64>() {
        Ok(nodes @ (3 | 5)) => Ok(nodes),
        _ => Err(format!("{value:?}: a cluster benchmark runs 3 or 5 nodes")),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Args, Command};

    fn plan(args: &[&str]) -> Result<ClusterPlan, clap::Error> {
        let args = Args::try_parse_from(["flotilla-bench", "cluster"].into_iter().chain(args.iter().copied()))?;
        match args.command {
            Some(Command::Cluster(cluster)) => Ok(ClusterPlan::from(cluster)),
            None => panic!("no cluster subcommand"),
        }
    }

    #[test]
    fn defaults_are_the_full_run() {
        let plan = plan(&[]).unwrap();
        assert_eq!(plan.nodes, 3);
        assert_eq!(plan.writers, 64);
        assert_eq!(plan.failover.trials, 20);
        assert_eq!((plan.reads.phase_secs, plan.write_secs, plan.read_rounds), (10, 10, 3));
        assert_eq!((plan.large.blobs, plan.large.blob_bytes), (8, 256 * MIB));
        assert_eq!(plan.failover.write_interval(), Duration::from_millis(10));
        assert_eq!(plan.failover.request_timeout(), Duration::from_secs(2));
        assert!(plan.runs(Phase::Reads) && plan.runs(Phase::Failover));
    }

    #[test]
    fn quick_shrinks_only_the_unset_sizes() {
        let plan = plan(&["--quick", "--failover-trials", "2", "--nodes", "5", "--writers", "8"]).unwrap();
        assert_eq!(plan.nodes, 5);
        assert_eq!(plan.failover.trials, 2);
        assert_eq!(plan.writers, 8);
        assert_eq!((plan.reads.phase_secs, plan.write_secs, plan.read_rounds), (3, 3, 1));
        assert_eq!((plan.large.blobs, plan.large.blob_bytes), (4, 64 * MIB));
        assert_eq!(plan.probe_bytes, 256 * MIB);
    }

    #[test]
    fn skip_accepts_lists_and_repeats() {
        let plan = plan(&["--skip", "failover,reads", "--skip", "reads"]).unwrap();
        assert_eq!(plan.skip, vec![Phase::Reads, Phase::Failover]);
        assert!(!plan.runs(Phase::Reads) && plan.runs(Phase::Writes) && plan.runs(Phase::Blobs));
    }

    #[test]
    fn only_three_or_five_nodes() {
        for nodes in ["1", "2", "4", "7", "x"] {
            assert!(plan(&["--nodes", nodes]).is_err(), "--nodes {nodes}");
        }
        assert!(plan(&["--failover-trials", "0"]).is_err());
        assert!(plan(&["--writers", "0"]).is_err());
    }

    #[test]
    fn node_cpus_are_a_positive_share_of_cores() {
        assert_eq!(plan(&[]).unwrap().node_cpus, None);
        assert_eq!(plan(&["--node-cpus", "0.5"]).unwrap().node_cpus, Some(0.5));
        for cores in ["0", "-1", "0.05", "NaN", "inf", "half"] {
            assert!(plan(&["--node-cpus", cores]).is_err(), "--node-cpus {cores}");
        }
    }
}
