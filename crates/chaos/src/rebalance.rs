//! Rebalancing under faults. A spare storage node joins a third of the way
//! into the schedule, so a new layout gives it partitions and data moves to
//! it while faults go on; two thirds of the way in it is drained, so the data
//! moves back off it and the cluster removes it. Neither waits for the other
//! or for a quiet cluster: a layout may still be syncing when a fault hits or
//! when the drain starts. The checks then require every acknowledged blob at
//! its replication factor on the remaining nodes, and the report says how
//! long each layout took to sync and the drain to finish.

use std::time::{Duration, Instant};

use reqwest::Method;

use crate::history::{History, Recorder};
use crate::target::Target;

/// How long the drain request may keep being refused (no leader, say).
const DRAIN_DEADLINE: Duration = Duration::from_secs(60);
/// Each try of the drain request gives up after this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// When the spare joins and leaves, and what happened.
#[derive(Debug)]
pub struct Rebalance {
    /// Joins before this step's quiet spell.
    join_before: usize,
    /// Is drained before this step's quiet spell (or after the last step).
    drain_before: usize,
    /// The spare's node id, once it runs.
    spare: Option<u64>,
    joined_us: Option<u64>,
    drained_us: Option<u64>,
}

/// The figures of a run's rebalancing, for the report.
#[derive(Debug, Clone, PartialEq)]
pub struct RebalanceFigures {
    pub spare: u64,
    /// The steps before which the spare joined and was drained.
    pub join_step: usize,
    pub drain_step: Option<usize>,
    /// Each layout version that appeared after the spare joined, and how
    /// long after it appeared some node reported it synced (`None`: never).
    pub layouts: Vec<(u64, Option<Duration>)>,
    /// From the drain request until a node reported the spare removed.
    pub drain_to_removed: Option<Duration>,
}

impl Rebalance {
    /// The plan for a schedule of `steps` steps.
    pub fn plan(steps: usize) -> Rebalance {
        let join_before = steps / 3;
        let drain_before = (2 * steps / 3).max(join_before + 1);
        Rebalance { join_before, drain_before, spare: None, joined_us: None, drained_us: None }
    }

    /// Called before step `index` (and with `index` = the step count after
    /// the last): starts the spare or drains it when its time has come.
    pub fn before_step(&mut self, target: &mut dyn Target, index: usize, recorder: &Recorder) -> anyhow::Result<()> {
        if index >= self.join_before && self.joined_us.is_none() {
            self.joined_us = Some(recorder.now());
            let id = target.add_spare()?;
            eprintln!("chaos: spare node {id} joined before step {index}");
            self.spare = Some(id);
        }
        if let (true, Some(spare), None) = (index >= self.drain_before, self.spare, self.drained_us) {
            self.drained_us = Some(recorder.now());
            drain(target, spare)?;
            eprintln!("chaos: spare node {spare} draining from before step {index}");
        }
        Ok(())
    }

    /// The spare's node id, if it was started.
    pub fn spare(&self) -> Option<u64> {
        self.spare
    }

    /// What the watcher saw of the layouts and the spare.
    pub fn figures(&self, history: &History) -> Option<RebalanceFigures> {
        let spare = self.spare?;
        let joined = self.joined_us?;
        let layouts = history
            .layouts
            .iter()
            .filter(|(_, seen)| seen.first_us >= joined)
            .map(|(version, seen)| {
                (*version, seen.synced_us.map(|synced| Duration::from_micros(synced.saturating_sub(seen.first_us))))
            })
            .collect();
        let drain_to_removed = self.drained_us.and_then(|drained| {
            let states = history.member_states.get(&spare)?;
            let (removed, _) = states.iter().find(|(at, state)| *at >= drained && state == "removed")?;
            Some(Duration::from_micros(removed - drained))
        });
        Some(RebalanceFigures {
            spare,
            join_step: self.join_before,
            drain_step: self.drained_us.map(|_| self.drain_before),
            layouts,
            drain_to_removed,
        })
    }
}

/// Asks the nodes in turn to drain `spare` until one accepts.
fn drain(target: &dyn Target, spare: u64) -> anyhow::Result<()> {
    let clients = target.clients(REQUEST_TIMEOUT);
    let deadline = Instant::now() + DRAIN_DEADLINE;
    let mut last = String::new();
    for client in clients.iter().cycle() {
        if Instant::now() >= deadline {
            break;
        }
        match client.call(Method::POST, &format!("/_cluster/nodes/{spare}/drain")) {
            Ok(reply) if (200..300).contains(&reply.status) => return Ok(()),
            // No leader at the moment, or this node cannot reach it.
            Ok(reply) if reply.status == 503 => last = format!("503: {}", reply.text()),
            Ok(reply) => {
                anyhow::bail!("draining node {spare}: {} answered {}: {}", reply.request, reply.status, reply.text())
            }
            Err(error) => last = format!("{error:#}"),
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    anyhow::bail!("no node accepted draining node {spare} within {DRAIN_DEADLINE:?}: {last}")
}

/// Whether `state` (a node's `/_cluster/state`) shows the spare removed.
pub fn spare_removed(state: &serde_json::Value, spare: u64) -> bool {
    state["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|member| member["id"].as_u64() == Some(spare))
        .is_none_or(|member| member["state"] == "removed")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_spare_joins_a_third_of_the_way_and_is_drained_two_thirds() {
        let plan = Rebalance::plan(9);
        assert_eq!((plan.join_before, plan.drain_before), (3, 6));
        // Short schedules still join before draining.
        let plan = Rebalance::plan(1);
        assert_eq!((plan.join_before, plan.drain_before), (0, 1));
        let plan = Rebalance::plan(0);
        assert_eq!((plan.join_before, plan.drain_before), (0, 1));
    }

    #[test]
    fn a_spare_counts_as_removed_once_listed_removed_or_gone() {
        let state =
            |spare_state: &str| json!({"nodes": [{"id": 1, "state": "active"}, {"id": 4, "state": spare_state}]});
        assert!(!spare_removed(&state("active"), 4));
        assert!(!spare_removed(&state("draining"), 4));
        assert!(spare_removed(&state("removed"), 4));
        assert!(spare_removed(&json!({"nodes": [{"id": 1, "state": "active"}]}), 4));
    }

    #[test]
    fn figures_time_the_layouts_after_the_join_and_the_drain() {
        let mut history = History::default();
        history.layouts.insert(1, crate::history::LayoutSeen { first_us: 0, synced_us: Some(10) });
        history.layouts.insert(2, crate::history::LayoutSeen { first_us: 2_000_000, synced_us: Some(3_500_000) });
        history.layouts.insert(3, crate::history::LayoutSeen { first_us: 6_000_000, synced_us: None });
        history.member_states.insert(
            4,
            vec![(1_000_000, "active".into()), (5_000_000, "draining".into()), (7_250_000, "removed".into())],
        );
        let rebalance = Rebalance {
            join_before: 1,
            drain_before: 2,
            spare: Some(4),
            joined_us: Some(1_000_000),
            drained_us: Some(5_000_000),
        };
        let figures = rebalance.figures(&history).unwrap();
        assert_eq!(figures.layouts, vec![(2, Some(Duration::from_millis(1500))), (3, None)]);
        assert_eq!(figures.drain_to_removed, Some(Duration::from_millis(2250)));
        assert_eq!(figures.drain_step, Some(2));
    }
}
