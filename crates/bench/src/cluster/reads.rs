//! Follower-read scaling: manifest GET and HEAD by tag (linearizable, the
//! default read consistency) from many clients, first all sent to the leader,
//! then spread round-robin over every node; the ratio spread ÷ leader-only
//! shows how far reads scale with followers serving them.

use std::time::Duration;

use serde::Serialize;

use super::stats::ratio;
use crate::cli::OpsPlan;
use crate::client::{Probe, RegistryClient};
use crate::ops::{self, OpKind, PhaseResult};

/// How long each phase runs untimed before it is measured.
const WARM_UP: Duration = Duration::from_secs(1);

/// The kinds of operation measured.
const KINDS: [OpKind; 2] = [OpKind::ManifestGet, OpKind::ManifestHead];

/// One operation, both ways.
#[derive(Debug, Clone, Serialize)]
pub struct ReadPair {
    pub kind: OpKind,
    pub leader_only: PhaseResult,
    pub spread: PhaseResult,
    /// Spread ops/s ÷ leader-only ops/s.
    pub scaling: Option<f64>,
}

/// Both read measurements.
#[derive(Debug, Clone, Serialize)]
pub struct ReadsResult {
    /// The node every leader-only request went to.
    pub leader: u64,
    pub pairs: Vec<ReadPair>,
}

/// Seeds the fixtures through the leader (`nodes[leader_index]`), then runs
/// each kind leader-only and spread.
pub async fn measure(
    nodes: &[RegistryClient],
    leader: u64,
    leader_index: usize,
    repo: &str,
    plan: &OpsPlan,
    seed: u64,
) -> anyhow::Result<ReadsResult> {
    let leader_client = &nodes[leader_index];
    super::progress(format!("  seeding {} tagged manifests through the leader (node {leader})", plan.manifests));
    let fixtures = ops::seed_fixtures(leader_client, repo, plan, seed).await?;
    let mut pairs = Vec::new();
    for kind in KINDS {
        let leader_probes = ops::probes(leader_client, repo, &fixtures, kind);
        let spread_probes = interleave(nodes.iter().map(|client| ops::probes(client, repo, &fixtures, kind)).collect());
        let leader_only = warm_then_measure(leader_client, kind, leader_probes, plan).await?;
        report_phase(kind, "leader only", &leader_only);
        let spread = warm_then_measure(leader_client, kind, spread_probes, plan).await?;
        report_phase(kind, &format!("spread over {} nodes", nodes.len()), &spread);
        let scaling = ratio(spread.ops_per_sec, leader_only.ops_per_sec);
        pairs.push(ReadPair { kind, leader_only, spread, scaling });
    }
    Ok(ReadsResult { leader, pairs })
}

/// Runs the phase untimed for [`WARM_UP`] first, so that every client's
/// connections to every node are open when the clock starts (opening 128 of
/// them at once to a node capped at a third of a core took seconds).
async fn warm_then_measure(
    client: &RegistryClient,
    kind: OpKind,
    probes: Vec<Probe>,
    plan: &OpsPlan,
) -> anyhow::Result<PhaseResult> {
    ops::run_phase(client, kind, probes.clone(), plan.concurrency, WARM_UP).await?;
    ops::run_phase(client, kind, probes, plan.concurrency, plan.phase()).await
}

fn report_phase(kind: OpKind, how: &str, phase: &PhaseResult) {
    super::progress(format!(
        "  {}, {how}: {:.0} ops/s, p50 {:.2} ms, p99 {:.2} ms, {} errors",
        kind.label(),
        phase.ops_per_sec,
        phase.p50_ms,
        phase.p99_ms,
        phase.errors
    ));
}

/// The lists' items round-robin: the first of each, then the second of each…
/// (a client walking the result visits the nodes in turn).
pub fn interleave<T>(lists: Vec<Vec<T>>) -> Vec<T> {
    let longest = lists.iter().map(Vec::len).max().unwrap_or(0);
    let mut iters: Vec<_> = lists.into_iter().map(Vec::into_iter).collect();
    let mut out = Vec::new();
    for _ in 0..longest {
        out.extend(iters.iter_mut().filter_map(Iterator::next));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleave_visits_every_list_in_turn() {
        assert_eq!(interleave(vec![vec![1, 4, 7], vec![2, 5, 8], vec![3, 6, 9]]), (1..=9).collect::<Vec<_>>());
        assert_eq!(interleave(vec![vec![1, 3], vec![2]]), vec![1, 2, 3]);
        assert_eq!(interleave::<u8>(vec![]), Vec::<u8>::new());
    }
}
