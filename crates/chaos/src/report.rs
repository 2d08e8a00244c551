//! What a run found, printed for people and as one JSON line for scripts.

use std::fmt;
use std::time::Duration;

use serde_json::json;

use crate::history::History;
use crate::rebalance::RebalanceFigures;
use crate::schedule::{Fault, FaultKind, Schedule};

/// A fault as it was injected.
#[derive(Debug, Clone)]
pub struct InjectedFault {
    pub step: usize,
    pub fault: Fault,
    /// The node it hit (if it hit one node).
    pub node: Option<usize>,
    /// When it started, in the history's clock.
    pub started_us: u64,
}

/// Whether a spare joined and was drained during the run.
#[derive(Debug, Clone, PartialEq)]
pub enum RebalanceOutcome {
    /// Not asked for.
    Off,
    /// The target cannot start another node (why).
    NotOffered(String),
    Ran(RebalanceFigures),
}

/// The outcome of a run.
#[derive(Debug)]
pub struct Report {
    pub seed: u64,
    pub schedule: Schedule,
    /// Kinds the target could not inject, and why.
    pub skipped: Vec<(FaultKind, String)>,
    pub injected: Vec<InjectedFault>,
    pub history: History,
    /// Every broken promise; empty on a good run.
    pub violations: Vec<String>,
    /// Fault that took the leader away → first acknowledged write.
    pub failovers: Vec<Duration>,
    /// Nodes that exited on their own (fail-stop) and were started again,
    /// as (step, node), as a supervisor would.
    pub restarts: Vec<(usize, usize)>,
    /// From healing the last fault until the cluster was whole.
    pub recovery: Option<Duration>,
    /// From healing the last fault until every blob was fully replicated.
    pub replication: Option<Duration>,
    pub rebalance: RebalanceOutcome,
    /// Node logs, attached when the run failed.
    pub logs: String,
}

impl Report {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// The `p`-th percentile (0..=100) of the failover times.
    pub fn failover_percentile(&self, p: f64) -> Option<Duration> {
        percentile(&self.failovers, p)
    }

    /// The figures as one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        let ms = |duration: Option<Duration>| duration.map(|d| d.as_millis() as u64);
        json!({
            "seed": self.seed,
            "passed": self.passed(),
            "steps": self.schedule.steps.len(),
            "faults_injected": self.injected.len(),
            "supervisor_restarts": self.restarts.len(),
            "operations_sent": self.history.sent(),
            "operations_answered": self.history.answered(),
            "tag_events_checked": self.history.tag_events.len(),
            "acked_blobs": self.history.acked_blobs.len(),
            "acked_manifests": self.history.acked_manifests.len(),
            "terms_seen": self.history.leaders.len(),
            "violations": self.violations.len(),
            "failovers": self.failovers.len(),
            "failover_p50_ms": ms(self.failover_percentile(50.0)),
            "failover_p99_ms": ms(self.failover_percentile(99.0)),
            "failover_ms": self.failovers.iter().map(|d| d.as_millis() as u64).collect::<Vec<_>>(),
            "recovery_ms": ms(self.recovery),
            "full_replication_ms": ms(self.replication),
            "rebalance": match &self.rebalance {
                RebalanceOutcome::Ran(figures) => json!({
                    "spare": figures.spare,
                    "join_step": figures.join_step,
                    "drain_step": figures.drain_step,
                    "layouts": figures.layouts.iter()
                        .map(|(version, synced)| json!({"version": version, "synced_after_ms": ms(*synced)}))
                        .collect::<Vec<_>>(),
                    "drain_to_removed_ms": ms(figures.drain_to_removed),
                }),
                _ => serde_json::Value::Null,
            },
        })
    }
}

fn percentile(values: &[Duration], p: f64) -> Option<Duration> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "== flotilla-chaos, seed {} ==", self.seed)?;
        for (kind, reason) in &self.skipped {
            writeln!(f, "skipped fault kind {kind}: {reason}")?;
        }
        writeln!(f, "faults injected: {} of {} scheduled", self.injected.len(), self.schedule.steps.len())?;
        for (step, node) in &self.restarts {
            writeln!(f, "node {node} exited on its own during step {step} and was started again (its log says why)")?;
        }
        writeln!(f, "operations: {} sent, {} answered", self.history.sent(), self.history.answered())?;
        for ((op, status), count) in &self.history.statuses {
            let status = match status {
                0 => "refused".to_owned(),
                1 => "timed out".to_owned(),
                status => status.to_string(),
            };
            writeln!(f, "    {op:<11} {status:>9}: {count}")?;
        }
        for example in &self.history.no_answer_examples {
            writeln!(f, "    e.g. {example}")?;
        }
        writeln!(
            f,
            "checked: {} tag operations, {} acknowledged blobs, {} acknowledged manifests, {} terms",
            self.history.tag_events.len(),
            self.history.acked_blobs.len(),
            self.history.acked_manifests.len(),
            self.history.leaders.len()
        )?;
        let ms = |duration: Option<Duration>| duration.map_or("-".to_owned(), |d| format!("{} ms", d.as_millis()));
        writeln!(
            f,
            "failover (leader lost → first acknowledged write): {} faults, p50 {}, p99 {}",
            self.failovers.len(),
            ms(self.failover_percentile(50.0)),
            ms(self.failover_percentile(99.0))
        )?;
        writeln!(
            f,
            "healed → cluster whole: {}; → every blob fully replicated: {}",
            ms(self.recovery),
            ms(self.replication)
        )?;
        match &self.rebalance {
            RebalanceOutcome::Off => {}
            RebalanceOutcome::NotOffered(reason) => writeln!(f, "rebalancing skipped: {reason}")?,
            RebalanceOutcome::Ran(figures) => {
                let drain = match figures.drain_step {
                    Some(step) => format!("drained before step {step}, removed {} later", ms(figures.drain_to_removed)),
                    None => "never drained".to_owned(),
                };
                writeln!(
                    f,
                    "rebalancing: spare node {} joined before step {}, {drain}",
                    figures.spare, figures.join_step
                )?;
                for (version, synced) in &figures.layouts {
                    writeln!(f, "    layout {version}: synced {} after it appeared", ms(*synced))?;
                }
            }
        }
        if self.passed() {
            writeln!(f, "PASSED: 0 violations")?;
        } else {
            writeln!(f, "FAILED: {} violation(s)", self.violations.len())?;
            for violation in &self.violations {
                writeln!(f, "  - {violation}")?;
            }
            writeln!(f, "replay with the same options and --seed {}", self.seed)?;
        }
        if !self.logs.is_empty() {
            writeln!(f, "{}", self.logs)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_rank_that_covers_the_share() {
        let values: Vec<Duration> = (1..=20).map(Duration::from_millis).collect();
        assert_eq!(percentile(&values, 50.0), Some(Duration::from_millis(10)));
        assert_eq!(percentile(&values, 99.0), Some(Duration::from_millis(20)));
        assert_eq!(percentile(&values, 0.0), Some(Duration::from_millis(1)));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
