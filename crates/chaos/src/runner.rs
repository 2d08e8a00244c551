//! One chaos run: start the workload, play the schedule's faults, heal, wait
//! for the cluster to recover, then check everything the workload recorded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::Method;

use crate::checks;
use crate::history::{History, Recorder};
use crate::rebalance::{self, Rebalance};
use crate::report::{InjectedFault, RebalanceOutcome, Report};
use crate::schedule::{Fault, FaultKind, Schedule, Who};
use crate::target::Target;
use crate::workload::{Workload, WorkloadOptions};

/// How long a look at a node's `/_cluster/state` may take.
const STATE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the clients keep going after the last fault is healed.
const AFTER_HEALING: Duration = Duration::from_secs(3);

/// What to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub seed: u64,
    /// How long the schedule of faults lasts.
    pub length: Duration,
    /// The kinds of fault to draw from.
    pub kinds: Vec<FaultKind>,
    /// How often a fault aimed at one node hits the leader
    /// ([`crate::schedule::LEADER_SHARE`] by default).
    pub leader_share: f64,
    pub workload: WorkloadOptions,
    /// After the last fault is healed, the cluster must be whole again within this.
    pub recovery_bound: Duration,
    /// …and every acknowledged blob back at its replication factor within this.
    pub replication_bound: Duration,
    /// Join a spare storage node and drain it during the schedule (where
    /// the target can start one; see [`crate::rebalance`]).
    pub rebalance: bool,
}

/// Undoes one fault.
enum Heal {
    Start(usize),
    Resume(usize),
    Network,
    FreeDisk(usize),
    Clock(usize),
}

/// Runs `options` against `target`. Faults a target cannot inject are left
/// out of the schedule (and listed in the report).
pub fn run(target: &mut dyn Target, options: &RunOptions) -> anyhow::Result<Report> {
    let mut skipped = Vec::new();
    let kinds: Vec<FaultKind> = options
        .kinds
        .iter()
        .copied()
        .filter(|kind| match target.supports(*kind) {
            Ok(()) => true,
            Err(reason) => {
                skipped.push((*kind, reason));
                false
            }
        })
        .collect();
    let schedule = Schedule::generate_aimed(options.seed, target.nodes(), options.length, &kinds, options.leader_share);
    eprint!("{schedule}");
    let recorder = Arc::new(Recorder::new());
    let urls: Vec<String> = (0..target.nodes()).map(|node| target.base_url(node)).collect();
    let workload_options = WorkloadOptions { seed: options.seed, ..options.workload.clone() };
    let workload = Workload::start(urls, target.credentials(), &workload_options, recorder.clone())?;
    let mut injected = Vec::new();
    let mut violations = Vec::new();
    let (mut rebalance, rebalance_not_offered) = match (options.rebalance, target.supports_spare()) {
        (true, Ok(())) => (Some(Rebalance::plan(schedule.steps.len())), None),
        (true, Err(reason)) => (None, Some(reason)),
        (false, _) => (None, None),
    };
    // (step, node): nodes that exited on their own and were started again.
    let mut restarts = Vec::new();
    for (index, step) in schedule.steps.iter().enumerate() {
        rebalance_step(target, &mut rebalance, index, &recorder, &mut violations);
        std::thread::sleep(step.quiet);
        let (heal, hit) = match inject(target, &step.fault) {
            Ok(done) => done,
            Err(error) => {
                violations.push(format!("step {index} ({}): injecting failed: {error:#}", step.fault));
                (Heal::Network, None)
            }
        };
        // In force from here (injecting takes a few commands).
        let started = recorder.now();
        eprintln!("chaos: step {index}: {} (node {hit:?}) for {:.1} s", step.fault, step.hold.as_secs_f64());
        std::thread::sleep(step.hold);
        if let Err(error) = undo(target, heal) {
            violations.push(format!("step {index} ({}): healing failed: {error:#}", step.fault));
        }
        match target.revive() {
            Ok(revived) => restarts.extend(revived.into_iter().map(|node| (index, node))),
            Err(error) => violations.push(format!("step {index}: restarting an exited node failed: {error:#}")),
        }
        injected.push(InjectedFault { step: index, fault: step.fault.clone(), node: hit, started_us: started });
    }
    rebalance_step(target, &mut rebalance, schedule.steps.len(), &recorder, &mut violations);
    let healed = Instant::now();
    let spare = rebalance.as_ref().and_then(Rebalance::spare);
    let recovery = wait_for_recovery(target, spare, options.recovery_bound).map(|()| healed.elapsed());
    if spare.is_some() {
        // Removed from the cluster (or not, and reported): stop the process.
        if let Err(error) = target.stop_spare() {
            violations.push(format!("stopping the spare failed: {error:#}"));
        }
    }
    // Clients keep going for a moment on the healed cluster.
    std::thread::sleep(AFTER_HEALING.saturating_sub(healed.elapsed()));
    workload.stop();
    if let Err(error) = &recovery {
        violations
            .push(format!("the cluster did not recover within {:?} of healing: {error:#}", options.recovery_bound));
    }
    let mut history: History = recorder.snapshot();
    let replication = checks::replication(target, &history, healed, options.replication_bound);
    if let Err(error) = &replication {
        violations.push(format!("{error:#}"));
    }
    violations.extend(checks::acknowledged_content(target, &history));
    checks::final_tag_reads(target, &recorder, &mut history, &workload_options);
    violations.extend(checks::anomalies(&history));
    violations.extend(checks::one_leader_per_term(&history));
    let linearizability = checks::tags_linearizable(&history);
    if let Err(message) = &linearizability {
        violations.push(message.clone());
    }
    let failovers = checks::failover_times(&injected, &history);
    let rebalance = match rebalance_not_offered {
        Some(reason) => RebalanceOutcome::NotOffered(reason),
        None => match rebalance.as_ref().and_then(|plan| plan.figures(&history)) {
            Some(figures) => RebalanceOutcome::Ran(figures),
            None => RebalanceOutcome::Off,
        },
    };
    Ok(Report {
        seed: options.seed,
        schedule,
        skipped,
        injected,
        history,
        violations,
        failovers,
        recovery: recovery.ok(),
        restarts,
        replication: replication.ok(),
        rebalance,
        logs: String::new(),
    })
}

/// The node id of node `index` is `index + 1` on every target.
fn leader_index(target: &dyn Target) -> anyhow::Result<usize> {
    for client in target.clients(STATE_TIMEOUT) {
        let Ok(reply) = client.call(Method::GET, "/_cluster/state") else { continue };
        if let Some(leader) = reply.json().ok().and_then(|state| state["leader"].as_u64()) {
            return Ok(leader as usize - 1);
        }
    }
    anyhow::bail!("no node names a leader")
}

fn resolve(target: &dyn Target, who: Who) -> anyhow::Result<usize> {
    let leader = leader_index(target)?;
    Ok(match who {
        Who::Leader => leader,
        Who::Follower(n) => {
            let followers: Vec<usize> = (0..target.nodes()).filter(|node| *node != leader).collect();
            followers[n % followers.len()]
        }
    })
}

fn cut_between(target: &mut dyn Target, one: &[usize], other: &[usize]) -> anyhow::Result<()> {
    for &a in one {
        for &b in other {
            target.cut(a, b)?;
            target.cut(b, a)?;
        }
    }
    Ok(())
}

/// Injects `fault`; what undoes it, and the node it hit (if one).
fn inject(target: &mut dyn Target, fault: &Fault) -> anyhow::Result<(Heal, Option<usize>)> {
    let all: Vec<usize> = (0..target.nodes()).collect();
    let others = |node: usize| all.iter().copied().filter(|other| *other != node).collect::<Vec<_>>();
    Ok(match fault {
        Fault::Kill(who) => {
            let node = resolve(target, *who)?;
            target.kill(node)?;
            (Heal::Start(node), Some(node))
        }
        Fault::Pause(who) => {
            let node = resolve(target, *who)?;
            target.pause(node)?;
            (Heal::Resume(node), Some(node))
        }
        Fault::Isolate(who) => {
            let node = resolve(target, *who)?;
            cut_between(target, &[node], &others(node)).context("isolating")?;
            (Heal::Network, Some(node))
        }
        Fault::Split { minority, with_leader } => {
            let leader = leader_index(target)?;
            let followers = others(leader);
            let small: Vec<usize> = if *with_leader {
                std::iter::once(leader).chain(followers.iter().copied().take(minority - 1)).collect()
            } else {
                followers.iter().copied().take(*minority).collect()
            };
            let large: Vec<usize> = all.iter().copied().filter(|node| !small.contains(node)).collect();
            cut_between(target, &small, &large).context("splitting")?;
            (Heal::Network, with_leader.then_some(leader))
        }
        Fault::Bridge(who) => {
            let bridge = resolve(target, *who)?;
            let rest = others(bridge);
            let (left, right) = rest.split_at(rest.len() / 2);
            cut_between(target, left, right).context("bridging")?;
            (Heal::Network, Some(bridge))
        }
        Fault::OneWay(who) => {
            let node = resolve(target, *who)?;
            for other in others(node) {
                target.cut(node, other)?;
            }
            (Heal::Network, Some(node))
        }
        Fault::Loss { who, percent } => {
            let node = resolve(target, *who)?;
            let probability = f64::from(*percent) / 100.0;
            for other in others(node) {
                target.lossy(node, other, probability)?;
                target.lossy(other, node, probability)?;
            }
            (Heal::Network, Some(node))
        }
        Fault::DiskFull(who) => {
            let node = resolve(target, *who)?;
            target.fill_disk(node)?;
            (Heal::FreeDisk(node), Some(node))
        }
        Fault::ClockJump { who, seconds } => {
            let node = resolve(target, *who)?;
            target.shift_clock(node, *seconds)?;
            (Heal::Clock(node), Some(node))
        }
    })
}

fn undo(target: &mut dyn Target, heal: Heal) -> anyhow::Result<()> {
    match heal {
        Heal::Start(node) => target.start(node),
        Heal::Resume(node) => target.resume(node),
        Heal::Network => target.heal_network(),
        Heal::FreeDisk(node) => target.free_disk(node),
        Heal::Clock(node) => target.shift_clock(node, 0),
    }
}

/// Joins or drains the spare when step `index` is due to (a failure is a violation).
fn rebalance_step(
    target: &mut dyn Target,
    rebalance: &mut Option<Rebalance>,
    index: usize,
    recorder: &Recorder,
    violations: &mut Vec<String>,
) {
    if let Some(plan) = rebalance {
        if let Err(error) = plan.before_step(target, index, recorder) {
            violations.push(format!("rebalancing before step {index}: {error:#}"));
        }
    }
}

/// Waits until every node answers, names the same leader, and sees every
/// node alive (and the drained spare, if there is one, removed).
fn wait_for_recovery(target: &dyn Target, spare: Option<u64>, bound: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + bound;
    let mut last = String::new();
    while Instant::now() < deadline {
        match whole(target, spare) {
            Ok(()) => return Ok(()),
            Err(error) => last = format!("{error:#}"),
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    anyhow::bail!("{last}")
}

fn whole(target: &dyn Target, spare: Option<u64>) -> anyhow::Result<()> {
    let mut leaders = Vec::new();
    for (node, client) in target.clients(STATE_TIMEOUT).iter().enumerate() {
        let state = client.call(Method::GET, "/_cluster/state")?.expect_status(200)?.json()?;
        leaders.push(state["leader"].as_u64().with_context(|| format!("node {node} knows no leader"))?);
        let nodes = state["nodes"].as_array().cloned().unwrap_or_default();
        if let Some(down) = nodes.iter().find(|member| member["state"] != "removed" && member["liveness"] != "alive") {
            anyhow::bail!("node {node} sees {down}");
        }
        if let Some(spare) = spare.filter(|spare| !rebalance::spare_removed(&state, *spare)) {
            anyhow::bail!("node {node} does not see the spare node {spare} removed yet");
        }
    }
    leaders.dedup();
    anyhow::ensure!(leaders.len() == 1, "nodes name different leaders: {leaders:?}");
    Ok(())
}
