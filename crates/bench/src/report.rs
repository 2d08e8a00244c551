//! The results of a run and their markdown rendering: one row per metric, one
//! column per registry, and the ratio Flotilla/docker-registry.

use std::fmt::Write as _;

use serde::Serialize;

use crate::cli::{Plan, Target};
use crate::content::MIB;
use crate::large::{HugeResult, Rounds};
use crate::limits::Limits;
use crate::ops::{OpKind, PhaseResult};

/// Everything measured in one run.
#[derive(Debug, Serialize)]
pub struct Report {
    pub plan: Plan,
    pub limits: Limits,
    pub machine: MachineLoad,
    pub results: Vec<RegistryResult>,
}

/// How busy the machine was: other work on the same cores skews every number.
#[derive(Debug, Clone, Serialize)]
pub struct MachineLoad {
    pub cores: usize,
    pub load_average_1m_start: Option<f64>,
    pub load_average_1m_end: Option<f64>,
}

/// What one registry achieved.
#[derive(Debug, Serialize)]
pub struct RegistryResult {
    pub target: Target,
    pub push: Rounds,
    /// Pulls with each digest verified by the client.
    pub pull: Rounds,
    /// Pulls with the bytes compared to the content (cheaper for the client).
    pub pull_compared: Rounds,
    pub phases: Vec<PhaseResult>,
    pub huge: Option<HugeResult>,
    /// Large-blob push MiB/s ÷ min(disk, sha256) MiB/s.
    pub ingest_efficiency: f64,
}

impl RegistryResult {
    fn phase(&self, kind: OpKind) -> Option<&PhaseResult> {
        self.phases.iter().find(|phase| phase.kind == kind)
    }
}

/// Reads one metric of one registry (`None` where it was not measured).
type Extract = Box<dyn Fn(&RegistryResult) -> Option<f64>>;

/// One table row: a label, how to read the value, its decimals.
struct Row {
    label: String,
    value: Extract,
    decimals: usize,
}

impl Row {
    fn new(
        label: impl Into<String>,
        decimals: usize,
        value: impl Fn(&RegistryResult) -> Option<f64> + 'static,
    ) -> Self {
        Row { label: label.into(), value: Box::new(value), decimals }
    }
}

impl Report {
    /// The markdown tables printed on stdout.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        self.write_header(&mut out);
        self.write_comparison(&mut out);
        self.write_limits(&mut out);
        self.write_errors(&mut out);
        out
    }

    fn write_header(&self, out: &mut String) {
        let plan = &self.plan;
        let _ = writeln!(out, "## Flotilla vs docker-registry (CNCF distribution 2.8)\n");
        let _ = writeln!(
            out,
            "Loopback, one client. Large blobs: {} rounds of {} × {} MiB over {} streams, the registries taking \
             turns. Small operations: {} clients × {} s per \
             phase over {} blobs of {} B and {} tagged manifests. Ratio = Flotilla ÷ docker-registry (higher is \
             better for rates, lower for latency, memory and CPU per GiB).\n",
            plan.large.rounds,
            plan.large.blobs,
            plan.large.blob_bytes / MIB,
            plan.large.streams,
            plan.ops.concurrency,
            plan.ops.phase_secs,
            plan.ops.small_blobs,
            plan.ops.small_blob_bytes,
            plan.ops.manifests,
        );
        if let Some(cores) = plan.registry_cpus {
            let _ = writeln!(
                out,
                "Each registry is limited to {cores} cores (a cgroup CPU quota each); the client is not.\n"
            );
        }
    }

    fn write_comparison(&self, out: &mut String) {
        let columns: Vec<&RegistryResult> = Target::ALL
            .iter()
            .filter_map(|target| self.results.iter().find(|result| result.target == *target))
            .collect();
        let both = columns.len() == Target::ALL.len();
        let mut header = "| Metric |".to_owned();
        let mut rule = "|---|".to_owned();
        for result in &columns {
            let _ = write!(header, " {} |", result.target.name());
            rule.push_str("---:|");
        }
        if both {
            header.push_str(" flotilla / docker-registry |");
            rule.push_str("---:|");
        }
        let _ = writeln!(out, "{header}\n{rule}");
        for row in self.rows() {
            let values: Vec<Option<f64>> = columns.iter().map(|result| (row.value)(result)).collect();
            let mut line = format!("| {} |", row.label);
            for value in &values {
                let _ = write!(line, " {} |", format_value(*value, row.decimals));
            }
            if both {
                let _ = write!(line, " {} |", format_ratio(values[0], values[1]));
            }
            let _ = writeln!(out, "{line}");
        }
        out.push('\n');
    }

    fn rows(&self) -> Vec<Row> {
        let mut rows = vec![
            Row::new("Large-blob push, MiB/s (median round)", 1, |r| Some(r.push.median_mib_s)),
            Row::new("Large-blob push, slowest round", 1, |r| Some(r.push.slowest_mib_s)),
            Row::new("Large-blob push, fastest round", 1, |r| Some(r.push.fastest_mib_s)),
            Row::new("Large-blob pull (digest verified), MiB/s (median round)", 1, |r| Some(r.pull.median_mib_s)),
            Row::new("Large-blob pull, slowest round", 1, |r| Some(r.pull.slowest_mib_s)),
            Row::new("Large-blob pull, fastest round", 1, |r| Some(r.pull.fastest_mib_s)),
            Row::new("Large-blob pull (bytes compared), MiB/s (median round)", 1, |r| {
                Some(r.pull_compared.median_mib_s)
            }),
            Row::new("Large-blob pull (bytes compared), slowest round", 1, |r| Some(r.pull_compared.slowest_mib_s)),
            Row::new("Large-blob pull (bytes compared), fastest round", 1, |r| Some(r.pull_compared.fastest_mib_s)),
            Row::new("Registry CPU per GiB pulled (digest verified), core-seconds", 2, |r| {
                r.pull.median_registry_cpu_per_gib
            }),
            Row::new("Registry CPU per GiB pulled (bytes compared), core-seconds", 2, |r| {
                r.pull_compared.median_registry_cpu_per_gib
            }),
        ];
        for kind in OpKind::ALL {
            rows.push(Row::new(format!("{}, ops/s", kind.label()), 0, move |r| r.phase(kind).map(|p| p.ops_per_sec)));
            rows.push(Row::new(format!("{} p50, ms", kind.label()), 2, move |r| r.phase(kind).map(|p| p.p50_ms)));
            rows.push(Row::new(format!("{} p99, ms", kind.label()), 2, move |r| r.phase(kind).map(|p| p.p99_ms)));
        }
        rows.push(Row::new("Ingest efficiency: push ÷ min(disk, sha256)", 2, |r| Some(r.ingest_efficiency)));
        if let Some(huge_bytes) = self.plan.huge_bytes {
            let gib = huge_bytes >> 30;
            rows.extend([
                Row::new(format!("Huge-blob push ({gib} GiB, 1 stream), MiB/s"), 1, |r| {
                    r.huge.as_ref().map(|h| h.push.mib_s)
                }),
                Row::new("Peak RSS before huge push, MiB", 1, |r| r.huge.as_ref().map(|h| h.peak_rss_before_mib)),
                Row::new("Peak RSS after huge push, MiB", 1, |r| r.huge.as_ref().map(|h| h.peak_rss_after_mib)),
                Row::new("Peak RSS growth during huge push, MiB", 1, |r| {
                    r.huge.as_ref().map(HugeResult::peak_rss_growth_mib)
                }),
            ]);
        }
        rows.push(Row::new("Failed small operations", 0, |r| {
            Some(r.phases.iter().map(|p| p.errors).sum::<u64>() as f64)
        }));
        rows
    }

    fn write_limits(&self, out: &mut String) {
        let limits = &self.limits;
        let probe_mib = limits.probe_bytes / MIB;
        let _ = writeln!(out, "### Machine limits (same run)\n\n| Limit | MiB/s |\n|---|---:|");
        let _ = writeln!(
            out,
            "| Sequential write of {probe_mib} MiB in 4 MiB writes + fsync, data disk | {:.1} |",
            limits.disk_fsync_write_mib_s
        );
        let _ = writeln!(
            out,
            "| SHA-256 of {probe_mib} MiB in memory, one core | {:.1} |",
            limits.sha256_single_core_mib_s
        );
        let _ = writeln!(out, "| Ingest ceiling = min of the two | {:.1} |\n", limits.ingest_ceiling_mib_s());
        let machine = &self.machine;
        let _ = writeln!(
            out,
            "{} cores; 1-minute load average {} at the start, {} at the end (above ~1 means other work shared the \
             cores and the numbers are pessimistic and noisy).\n",
            machine.cores,
            format_value(machine.load_average_1m_start, 2),
            format_value(machine.load_average_1m_end, 2),
        );
    }

    fn write_errors(&self, out: &mut String) {
        for result in &self.results {
            for phase in &result.phases {
                if let Some(error) = &phase.first_error {
                    let _ = writeln!(
                        out,
                        "- {} {}: {} failed; first: {error}",
                        result.target.name(),
                        phase.kind.label(),
                        phase.errors
                    );
                }
            }
        }
    }
}

pub(crate) fn format_value(value: Option<f64>, decimals: usize) -> String {
    match value {
        Some(value) => format!("{value:.decimals$}"),
        None => "—".to_owned(),
    }
}

/// `flotilla ÷ docker-registry`, or a dash where the quotient means nothing.
fn format_ratio(flotilla: Option<f64>, docker_registry: Option<f64>) -> String {
    match (flotilla, docker_registry) {
        (Some(numerator), Some(denominator)) if denominator > 0.0 && numerator >= 0.0 => {
            format!("{:.2}×", numerator / denominator)
        }
        _ => "—".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_is_flotilla_over_docker_registry() {
        assert_eq!(format_ratio(Some(300.0), Some(200.0)), "1.50×");
        assert_eq!(format_ratio(Some(1.0), Some(0.0)), "—");
        assert_eq!(format_ratio(None, Some(1.0)), "—");
        assert_eq!(format_value(Some(1.234), 1), "1.2");
        assert_eq!(format_value(None, 1), "—");
    }
}
