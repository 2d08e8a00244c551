//! The results of a cluster run and their markdown rendering: the run's
//! context (nodes, cores, sizes, durations), then one table per measurement
//! with the project's target next to each number.

use std::fmt::Write as _;

use serde::Serialize;

use super::blobs::BlobsResult;
use super::cli::ClusterPlan;
use super::failover::FailoverResult;
use super::gc::{GcResult, DURATION_TARGET_SECS, THROUGHPUT_TARGET};
use super::maintenance::MaintenanceResult;
use super::reads::ReadsResult;
use super::stats::LatencyStats;
use crate::content::MIB;
use crate::limits::Limits;
use crate::report::{format_value, MachineLoad};

/// Follower reads should at least double the leader's read rate.
pub const READ_SCALING_TARGET: f64 = 2.0;
/// p99 of kill → first write, milliseconds.
pub const FAILOVER_P99_TARGET_MS: f64 = 1500.0;

/// Everything measured in one cluster run (`None`: skipped).
#[derive(Debug, Serialize)]
pub struct ClusterReport {
    pub plan: ClusterPlan,
    pub machine: MachineLoad,
    pub limits: Limits,
    /// The layout's replication factor R.
    pub replication_factor: u32,
    /// Start of the nodes until the cluster first formed, seconds.
    pub formation_secs: f64,
    pub reads: Option<ReadsResult>,
    pub writes: Option<LatencyStats>,
    pub blobs: Option<BlobsResult>,
    pub failover: Option<FailoverResult>,
    pub gc: Option<GcResult>,
    pub maintenance: Option<MaintenanceResult>,
    pub total_secs: f64,
}

impl ClusterReport {
    /// The markdown printed on stdout.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        self.write_header(&mut out);
        if let Some(reads) = &self.reads {
            self.write_reads(&mut out, reads);
        }
        self.write_summary(&mut out);
        self.write_errors(&mut out);
        out
    }

    fn write_header(&self, out: &mut String) {
        let plan = &self.plan;
        let machine = &self.machine;
        let _ = writeln!(out, "## Flotilla cluster: {} nodes on loopback\n", plan.nodes);
        let _ = writeln!(
            out,
            "{} nodes (all voters, R = {}), the client and the nodes on one machine with {} cores (1-minute load \
             average {} at the start, {} at the end). Reads: {} clients × {} s per phase over {} tagged manifests, \
             the median of {} rounds. \
             Writes: {} clients × {} s. Large blobs: {} × {} MiB over {} streams. Failover: {} trials, a write every \
             {} ms with a {} ms deadline. {} The cluster formed in {:.1} s; the run took {:.0} s.\n",
            plan.nodes,
            self.replication_factor,
            machine.cores,
            format_value(machine.load_average_1m_start, 2),
            format_value(machine.load_average_1m_end, 2),
            plan.reads.concurrency,
            plan.reads.phase_secs,
            plan.reads.manifests,
            plan.read_rounds,
            plan.writers,
            plan.write_secs,
            plan.large.blobs,
            plan.large.blob_bytes / MIB,
            plan.large.streams,
            plan.failover.trials,
            plan.failover.write_interval_ms,
            plan.failover.request_timeout_ms,
            match plan.node_cpus {
                Some(cores) => format!("Each node is limited to {cores} cores (a cgroup CPU quota per node)."),
                None => "The nodes' CPU is not limited.".to_owned(),
            },
            self.formation_secs,
            self.total_secs,
        );
    }

    fn write_reads(&self, out: &mut String, reads: &ReadsResult) {
        let nodes = self.plan.nodes;
        let _ = writeln!(
            out,
            "### Follower reads (linearizable, by tag)\n\n| Metric | leader only (node {}) | spread over {nodes} nodes \
             | spread ÷ leader only |\n|---|---:|---:|---:|",
            reads.leader
        );
        for pair in &reads.pairs {
            let label = pair.kind.label();
            let (leader, spread) = (&pair.leader_only, &pair.spread);
            let _ = writeln!(
                out,
                "| {label}, ops/s | {:.0} | {:.0} | {} |",
                leader.ops_per_sec,
                spread.ops_per_sec,
                format_times(pair.scaling)
            );
            if pair.leader_only_rounds.len() > 1 {
                let _ = writeln!(
                    out,
                    "| {label}, ops/s of each round | {} | {} | |",
                    format_rounds(&pair.leader_only_rounds),
                    format_rounds(&pair.spread_rounds)
                );
            }
            let _ = writeln!(out, "| {label} p50, ms | {:.2} | {:.2} | |", leader.p50_ms, spread.p50_ms);
            let _ = writeln!(out, "| {label} p99, ms | {:.2} | {:.2} | |", leader.p99_ms, spread.p99_ms);
            let _ = writeln!(out, "| {label} failed requests | {} | {} | |", leader.errors, spread.errors);
        }
        out.push('\n');
    }

    fn write_summary(&self, out: &mut String) {
        let _ = writeln!(out, "### Summary\n\n| Metric | Value | Target |\n|---|---:|---|");
        if let Some(reads) = &self.reads {
            for pair in &reads.pairs {
                let _ = writeln!(
                    out,
                    "| {} scaling, spread ÷ leader only | {} | ≥ {READ_SCALING_TARGET:.0}× ({}) |",
                    pair.kind.label(),
                    format_times(pair.scaling),
                    verdict(pair.scaling.map(|scaling| scaling >= READ_SCALING_TARGET))
                );
            }
        }
        if let Some(writes) = &self.writes {
            let writers = self.plan.writers;
            let _ = writeln!(out, "| Tag + manifest writes, {writers} clients, ops/s | {:.0} | |", writes.ops_per_sec);
            let _ = writeln!(out, "| Tag + manifest write p50, ms | {:.2} | |", writes.p50_ms);
            let _ = writeln!(out, "| Tag + manifest write p99, ms | {:.2} | |", writes.p99_ms);
            let _ = writeln!(
                out,
                "| Failed writes | {} | 0 ({}) |",
                writes.errors,
                verdict(Some(writes.errors == 0 && writes.ops > 0))
            );
        }
        if let Some(blobs) = &self.blobs {
            let replicas = blobs.replicas;
            let _ = writeln!(out, "| Large-blob push, R = {replicas}, MiB/s | {:.1} | |", blobs.push.mib_s);
            let _ = writeln!(
                out,
                "| fsync'd disk write ÷ {replicas}, MiB/s | {:.1} | |\n| Push ÷ (disk ÷ {replicas}) | {} | |",
                blobs.disk_share_mib_s,
                format_value(blobs.ratio, 2)
            );
        }
        if let Some(failover) = &self.failover {
            let spread = failover.spread.as_ref();
            let trials = failover.trials.len();
            let recovered = spread.map_or(0, |spread| spread.samples);
            let _ = writeln!(out, "| Failover trials recovered | {recovered} of {trials} | all |");
            for (label, value) in [
                ("min", spread.map(|s| s.min_ms)),
                ("p50", spread.map(|s| s.p50_ms)),
                ("p99", spread.map(|s| s.p99_ms)),
                ("max", spread.map(|s| s.max_ms)),
            ] {
                let target = if label == "p99" {
                    let met = spread.map(|s| s.p99_ms < FAILOVER_P99_TARGET_MS && failover.timed_out == 0);
                    format!(" < {FAILOVER_P99_TARGET_MS:.0} ({}) ", verdict(met))
                } else {
                    " ".to_owned()
                };
                let _ = writeln!(
                    out,
                    "| Failover, kill → first write, {label}, ms | {} |{target}|",
                    format_value(value, 0)
                );
            }
        }
        if let Some(gc) = &self.gc {
            let _ = writeln!(
                out,
                "| GC: unreferenced blobs pushed (1 KiB), per s | {} ({:.0}/s) | |",
                gc.blobs, gc.fill_blobs_per_sec
            );
            let _ = writeln!(
                out,
                "| GC: collected, task start → finished, s | {} in {:.1} | < {DURATION_TARGET_SECS:.0} for 100 000 ({}) |",
                gc.collected,
                gc.collect_secs,
                verdict((gc.blobs >= 100_000).then_some(gc.collect_secs < DURATION_TARGET_SECS && gc.collected >= gc.blobs))
            );
            let _ = writeln!(out, "| GC: every copy deleted on every node, s | {:.1} | |", gc.reclaim_secs);
            let _ = writeln!(
                out,
                "| GC: pushes (layer + manifest) alone, during, per s | {:.0}, {:.0} | |",
                gc.baseline.ops_per_sec, gc.during.ops_per_sec
            );
            let _ = writeln!(
                out,
                "| GC: push throughput during ÷ alone | {} | ≥ {THROUGHPUT_TARGET} ({}) |",
                format_value(gc.throughput_ratio, 2),
                verdict(gc.throughput_ratio.map(|ratio| ratio >= THROUGHPUT_TARGET))
            );
            let _ = writeln!(
                out,
                "| GC: failed pushes alone, during | {}, {} | 0 ({}) |",
                gc.baseline.errors,
                gc.during.errors,
                verdict(Some(gc.baseline.errors + gc.during.errors == 0))
            );
        }
        if let Some(maintenance) = &self.maintenance {
            self.write_maintenance(out, maintenance);
        }
        let limits = &self.limits;
        let _ = writeln!(
            out,
            "\nMachine limits in the same run: sequential write of {} MiB + fsync {:.1} MiB/s, SHA-256 on one core \
             {:.1} MiB/s. Every node shares the {} cores and the disk: on a small machine CPU, not the cluster, may \
             cap read scaling.\n",
            limits.probe_bytes / MIB,
            limits.disk_fsync_write_mib_s,
            limits.sha256_single_core_mib_s,
            self.machine.cores
        );
    }

    fn write_errors(&self, out: &mut String) {
        if let Some(reads) = &self.reads {
            for pair in &reads.pairs {
                for (how, phase) in [("leader only", &pair.leader_only), ("spread", &pair.spread)] {
                    if let Some(error) = &phase.first_error {
                        let _ =
                            writeln!(out, "- {} ({how}): {} failed; first: {error}", pair.kind.label(), phase.errors);
                    }
                }
            }
        }
        if let Some(error) = self.writes.as_ref().and_then(|writes| writes.first_error.as_ref()) {
            let _ = writeln!(out, "- writes: {} failed; first: {error}", self.writes.as_ref().map_or(0, |w| w.errors));
        }
        for (phase, stats) in self.gc.iter().flat_map(|gc| [("alone", &gc.baseline), ("during gc", &gc.during)]) {
            if let Some(error) = &stats.first_error {
                let _ = writeln!(out, "- gc pushes ({phase}): {} failed; first: {error}", stats.errors);
            }
        }
        for (number, trial) in self.failover.iter().flat_map(|failover| failover.trials.iter().enumerate()) {
            if trial.failover_ms.is_none() {
                let error = trial.first_error.as_deref().unwrap_or("no answer");
                let _ = writeln!(out, "- failover trial {}: no write succeeded; first error: {error}", number + 1);
            }
        }
    }
}

/// Each round's ops/s: `5605 / 4671 / 6020`.
fn format_rounds(rounds: &[f64]) -> String {
    rounds.iter().map(|ops| format!("{ops:.0}")).collect::<Vec<_>>().join(" / ")
}

/// `2.31×`, or a dash.
fn format_times(value: Option<f64>) -> String {
    value.map_or_else(|| "—".to_owned(), |value| format!("{value:.2}×"))
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "not met",
        None => "—",
    }
}

impl ClusterReport {
    /// Repair and rebalance rows: rates against the copy-rate cap and the disk.
    fn write_maintenance(&self, out: &mut String, maintenance: &MaintenanceResult) {
        let disk = self.limits.disk_fsync_write_mib_s;
        let cap = maintenance.copy_rate_mib_s.map_or("unpaced".to_owned(), |cap| format!("{cap:.0} MiB/s per node"));
        let _ = writeln!(
            out,
            "| Maintenance data: blobs × MiB, copy rate | {} × {}, {cap} | |",
            maintenance.blobs,
            maintenance.blob_bytes / MIB
        );
        for (what, run) in [
            ("Repair (a follower's store lost)", &maintenance.repair),
            ("Rebalance sync (one node added)", &maintenance.rebalance),
        ] {
            let _ = writeln!(
                out,
                "| {what}: MiB in s, MiB/s, ÷ disk | {:.0} in {:.1}, {:.1}, {:.2} | |",
                run.bytes as f64 / MIB as f64,
                run.secs,
                run.mib_s,
                run.mib_s / disk.max(1e-9)
            );
        }
        let _ = writeln!(
            out,
            "| Rebalance: moved ÷ ideal (new node's fair share) | {:.3} | ≤ 1.15 ({}) |",
            maintenance.rebalance_ratio,
            verdict(Some(maintenance.rebalance_ratio <= 1.15))
        );
        let _ = writeln!(
            out,
            "| Optimize after the sync: MiB dropped, s | {:.0}, {:.1} | |",
            maintenance.optimize_dropped_bytes as f64 / MIB as f64,
            maintenance.optimize_secs
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    use super::*;
    use crate::cli::{Args, Command};
    use crate::cluster::failover::Trial;
    use crate::cluster::reads::ReadPair;
    use crate::cluster::stats::{Spread, Tally};
    use crate::large::Throughput;
    use crate::ops::{OpKind, PhaseResult};

    fn phase(kind: OpKind, ops_per_sec: f64) -> PhaseResult {
        PhaseResult {
            kind,
            ops: 100,
            errors: 0,
            seconds: 1.0,
            ops_per_sec,
            p50_ms: 1.0,
            p99_ms: 2.0,
            first_error: None,
        }
    }

    fn stats(ops_per_sec: f64) -> LatencyStats {
        LatencyStats { ops: 100, errors: 0, seconds: 1.0, ops_per_sec, p50_ms: 1.0, p99_ms: 2.0, first_error: None }
    }

    fn trial(failover_ms: Option<f64>) -> Trial {
        Trial {
            killed: 1,
            writer_node: 2,
            failover_ms,
            failed_writes: 3,
            first_error: Some("503".into()),
            new_leader: 2,
            reform_secs: 4.0,
        }
    }

    #[test]
    fn markdown_has_every_measurement_and_verdict() {
        let Some(Command::Cluster(args)) = Args::parse_from(["flotilla-bench", "cluster", "--quick"]).command else {
            panic!("no cluster subcommand");
        };
        let mut writes = Tally::default();
        writes.success(Duration::from_millis(5));
        let report = ClusterReport {
            plan: ClusterPlan::from(args),
            machine: MachineLoad { cores: 2, load_average_1m_start: Some(0.5), load_average_1m_end: None },
            limits: Limits { probe_bytes: 256 * MIB, disk_fsync_write_mib_s: 300.0, sha256_single_core_mib_s: 1000.0 },
            replication_factor: 3,
            formation_secs: 2.0,
            reads: Some(ReadsResult {
                leader: 1,
                pairs: vec![ReadPair {
                    kind: OpKind::ManifestGet,
                    leader_only: phase(OpKind::ManifestGet, 1000.0),
                    spread: phase(OpKind::ManifestGet, 2500.0),
                    leader_only_rounds: vec![900.0, 1000.0, 1100.0],
                    spread_rounds: vec![2500.0, 2400.0, 2600.0],
                    scaling: Some(2.5),
                }],
            }),
            writes: Some(writes.into_stats(1.0)),
            blobs: Some(BlobsResult {
                push: Throughput::new(100 * MIB, 1.0),
                replicas: 3,
                disk_share_mib_s: 100.0,
                ratio: Some(1.0),
            }),
            failover: Some(FailoverResult {
                trials: vec![trial(Some(800.0)), trial(None)],
                spread: Spread::of(&[Duration::from_millis(800)]),
                timed_out: 1,
                seconds: 20.0,
            }),
            gc: Some(GcResult {
                blobs: 100_000,
                fill_blobs_per_sec: 900.0,
                collected: 100_000,
                collect_secs: 20.0,
                reclaim_secs: 25.0,
                baseline: stats(100.0),
                during: stats(85.0),
                throughput_ratio: Some(0.85),
            }),
            maintenance: Some(MaintenanceResult {
                blobs: 256,
                blob_bytes: 4 * MIB,
                logical_bytes: 1024 * MIB,
                copy_rate_mib_s: Some(100.0),
                repair: super::super::maintenance::CopyRun { bytes: 1024 * MIB, secs: 12.8, mib_s: 80.0 },
                rebalance: super::super::maintenance::CopyRun { bytes: 768 * MIB, secs: 9.6, mib_s: 80.0 },
                rebalance_ideal_bytes: 768 * MIB,
                rebalance_ratio: 1.0,
                optimize_dropped_bytes: 768 * MIB,
                optimize_secs: 2.0,
            }),
            total_secs: 60.0,
        };
        let markdown = report.to_markdown();
        for expected in [
            "## Flotilla cluster: 3 nodes on loopback",
            "with 2 cores",
            "| Manifest GET (by tag), ops/s | 1000 | 2500 | 2.50× |",
            "| Manifest GET (by tag), ops/s of each round | 900 / 1000 / 1100 | 2500 / 2400 / 2600 | |",
            "| Manifest GET (by tag) scaling, spread ÷ leader only | 2.50× | ≥ 2× (met) |",
            "| Failed writes | 0 | 0 (met) |",
            "| Large-blob push, R = 3, MiB/s | 100.0 | |",
            "| Push ÷ (disk ÷ 3) | 1.00 | |",
            "| Failover trials recovered | 1 of 2 | all |",
            "| Failover, kill → first write, p99, ms | 800 | < 1500 (not met) |",
            "- failover trial 2: no write succeeded; first error: 503",
            "| GC: collected, task start → finished, s | 100000 in 20.0 | < 60 for 100 000 (met) |",
            "| GC: push throughput during ÷ alone | 0.85 | ≥ 0.8 (met) |",
            "| Repair (a follower's store lost): MiB in s, MiB/s, ÷ disk | 1024 in 12.8, 80.0, 0.27 | |",
            "| Rebalance: moved ÷ ideal (new node's fair share) | 1.000 | ≤ 1.15 (met) |",
        ] {
            assert!(markdown.contains(expected), "{expected:?} missing from:\n{markdown}");
        }
        assert!(serde_json::to_string(&report).unwrap().contains("\"failover_ms\":800.0"));
    }

    #[test]
    fn formatting() {
        assert_eq!(format_times(Some(2.314)), "2.31×");
        assert_eq!(format_times(None), "—");
        assert_eq!(verdict(Some(true)), "met");
        assert_eq!(verdict(Some(false)), "not met");
        assert_eq!(verdict(None), "—");
    }
}
