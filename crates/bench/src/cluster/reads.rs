//! Follower-read scaling: manifest GET and HEAD by tag (linearizable, the
//! default read consistency) from many clients, all sent to the leader, and
//! spread round-robin over every node; the ratio spread ÷ leader-only shows
//! how far reads scale with followers serving them.
//!
//! The two take turns for a few rounds (the order alternating) and each is
//! reported by its median round: nodes capped at a third of a core on a
//! shared 2-core host gave single phases that differed by 1.5× from one run
//! to the next.

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
    /// The median round of each.
    pub leader_only: PhaseResult,
    pub spread: PhaseResult,
    /// Ops/s of every round, in the order run.
    pub leader_only_rounds: Vec<f64>,
    pub spread_rounds: Vec<f64>,
    /// Spread ops/s ÷ leader-only ops/s, of the medians.
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
/// each kind leader-only and spread, `rounds` times each.
pub async fn measure(
    nodes: &[RegistryClient],
    leader: u64,
    leader_index: usize,
    repo: &str,
    plan: &OpsPlan,
    rounds: u64,
    seed: u64,
) -> anyhow::Result<ReadsResult> {
    let leader_client = &nodes[leader_index];
    super::progress(format!("  seeding {} tagged manifests through the leader (node {leader})", plan.manifests));
    let fixtures = ops::seed_fixtures(leader_client, repo, plan, seed).await?;
    let mut pairs = Vec::new();
    for kind in KINDS {
        let leader_probes = ops::probes(leader_client, repo, &fixtures, kind);
        let spread_probes = interleave(nodes.iter().map(|client| ops::probes(client, repo, &fixtures, kind)).collect());
        let (mut leader_rounds, mut spread_rounds) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            for spread in turn_order(round) {
                let (probes, results, how) = if spread {
                    (&spread_probes, &mut spread_rounds, format!("spread over {} nodes", nodes.len()))
                } else {
                    (&leader_probes, &mut leader_rounds, "leader only".to_owned())
                };
                let result = warm_then_measure(leader_client, kind, probes.clone(), plan).await?;
                report_phase(kind, &format!("round {}, {how}", round + 1), &result);
                results.push(result);
            }
        }
        let leader_only_rounds = leader_rounds.iter().map(|phase| phase.ops_per_sec).collect();
        let spread_rounds_ops = spread_rounds.iter().map(|phase| phase.ops_per_sec).collect();
        let (leader_only, spread) = (median_round(leader_rounds), median_round(spread_rounds));
        let scaling = ratio(spread.ops_per_sec, leader_only.ops_per_sec);
        pairs.push(ReadPair {
            kind,
            leader_only,
            spread,
            leader_only_rounds,
            spread_rounds: spread_rounds_ops,
            scaling,
        });
    }
    Ok(ReadsResult { leader, pairs })
}

/// Whether each phase of `round` is the spread one: leader-only first in
/// even rounds, spread first in odd ones.
fn turn_order(round: u64) -> [bool; 2] {
    if round.is_multiple_of(2) {
        [false, true]
    } else {
        [true, false]
    }
}

/// The round with the median ops/s (the lower middle one of an even count).
fn median_round(mut rounds: Vec<PhaseResult>) -> PhaseResult {
    rounds.sort_by(|a, b| a.ops_per_sec.total_cmp(&b.ops_per_sec));
    rounds.swap_remove((rounds.len() - 1) / 2)
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

    fn phase(ops_per_sec: f64) -> PhaseResult {
        PhaseResult {
            kind: OpKind::ManifestGet,
            ops: 0,
            errors: 0,
            seconds: 1.0,
            ops_per_sec,
            p50_ms: 0.0,
            p99_ms: 0.0,
            first_error: None,
        }
    }

    #[test]
    fn the_median_round_is_reported() {
        assert_eq!(median_round(vec![phase(5.0), phase(1.0), phase(3.0)]).ops_per_sec, 3.0);
        assert_eq!(median_round(vec![phase(4.0), phase(2.0)]).ops_per_sec, 2.0);
        assert_eq!(median_round(vec![phase(7.0)]).ops_per_sec, 7.0);
    }

    #[test]
    fn rounds_alternate_which_goes_first() {
        assert_eq!(turn_order(0), [false, true]);
        assert_eq!(turn_order(1), [true, false]);
        assert_eq!(turn_order(2), [false, true]);
    }

    #[test]
    fn interleave_visits_every_list_in_turn() {
        assert_eq!(interleave(vec![vec![1, 4, 7], vec![2, 5, 8], vec![3, 6, 9]]), (1..=9).collect::<Vec<_>>());
        assert_eq!(interleave(vec![vec![1, 3], vec![2]]), vec![1, 2, 3]);
        assert_eq!(interleave::<u8>(vec![]), Vec::<u8>::new());
    }
}
