//! Seeded fault schedules.
//!
//! A schedule is a list of steps, one fault at a time: a quiet spell, then a
//! fault held for a while, then healed. It is a pure function of the seed, the
//! node count, the run's length and the fault kinds allowed, so a seed printed
//! by a failing run replays the same schedule. Which node "the leader" or "a
//! follower" names is decided when the step starts, from the cluster's state.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A kind of fault, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    Kill,
    Pause,
    Isolate,
    Split,
    Bridge,
    OneWay,
    Loss,
    DiskFull,
    ClockJump,
}

impl FaultKind {
    /// Every kind, in the order the command line lists them.
    pub const ALL: [FaultKind; 9] = [
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::Isolate,
        FaultKind::Split,
        FaultKind::Bridge,
        FaultKind::OneWay,
        FaultKind::Loss,
        FaultKind::DiskFull,
        FaultKind::ClockJump,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Isolate => "isolate",
            FaultKind::Split => "split",
            FaultKind::Bridge => "bridge",
            FaultKind::OneWay => "one-way",
            FaultKind::Loss => "loss",
            FaultKind::DiskFull => "disk-full",
            FaultKind::ClockJump => "clock-jump",
        }
    }
}

impl FromStr for FaultKind {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        FaultKind::ALL.into_iter().find(|kind| kind.name() == name).ok_or_else(|| {
            let known: Vec<&str> = FaultKind::ALL.iter().map(|kind| kind.name()).collect();
            format!("unknown fault {name:?} (known: {})", known.join(", "))
        })
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which node a fault hits, resolved when the step starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// The node that leads at that moment.
    Leader,
    /// The `n`-th follower (modulo their number) at that moment.
    Follower(usize),
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Who::Leader => f.write_str("the leader"),
            Who::Follower(n) => write!(f, "follower #{n}"),
        }
    }
}

/// One fault.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// kill -9; restarted when healed.
    Kill(Who),
    /// SIGSTOP; SIGCONT when healed.
    Pause(Who),
    /// Every packet between the node and each other node dropped, both ways.
    Isolate(Who),
    /// The nodes split in two groups with no traffic between them; the
    /// smaller group holds `minority` nodes, the leader among them if `with_leader`.
    Split { minority: usize, with_leader: bool },
    /// Two groups that cannot reach each other but both reach one node
    /// in the middle (needs 3 nodes or more).
    Bridge(Who),
    /// The node's packets to every other node dropped; it still hears them.
    OneWay(Who),
    /// This share of the node's packets to each other node dropped, both ways.
    Loss { who: Who, percent: u32 },
    /// The node's disk filled to the last byte; freed when healed.
    DiskFull(Who),
    /// The node's wall clock jumped by this many seconds (negative: back).
    ClockJump { who: Who, seconds: i64 },
}

impl Fault {
    /// The kind of this fault.
    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::Kill(_) => FaultKind::Kill,
            Fault::Pause(_) => FaultKind::Pause,
            Fault::Isolate(_) => FaultKind::Isolate,
            Fault::Split { .. } => FaultKind::Split,
            Fault::Bridge(_) => FaultKind::Bridge,
            Fault::OneWay(_) => FaultKind::OneWay,
            Fault::Loss { .. } => FaultKind::Loss,
            Fault::DiskFull(_) => FaultKind::DiskFull,
            Fault::ClockJump { .. } => FaultKind::ClockJump,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Kill(who) => write!(f, "kill -9 {who}"),
            Fault::Pause(who) => write!(f, "pause {who}"),
            Fault::Isolate(who) => write!(f, "isolate {who}"),
            Fault::Split { minority, with_leader } => {
                let side = if *with_leader { "with" } else { "without" };
                write!(f, "split off {minority} node(s) {side} the leader")
            }
            Fault::Bridge(who) => write!(f, "bridge through {who}"),
            Fault::OneWay(who) => write!(f, "mute {who} (one-way)"),
            Fault::Loss { who, percent } => write!(f, "{percent}% loss at {who}"),
            Fault::DiskFull(who) => write!(f, "fill the disk of {who}"),
            Fault::ClockJump { who, seconds } => write!(f, "jump the clock of {who} by {seconds:+} s"),
        }
    }
}

/// One step: quiet, then `fault` for `hold`, then healed.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Time without faults before this one starts.
    pub quiet: Duration,
    pub fault: Fault,
    /// How long the fault lasts.
    pub hold: Duration,
}

/// A seeded list of steps.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub seed: u64,
    pub steps: Vec<Step>,
}

impl Schedule {
    /// The steps that fill `length` for a cluster of `nodes`, drawing faults
    /// from `kinds` (those a cluster of this size cannot have are left out);
    /// a fault aimed at one node hits the leader with [`LEADER_SHARE`].
    pub fn generate(seed: u64, nodes: usize, length: Duration, kinds: &[FaultKind]) -> Schedule {
        Schedule::generate_aimed(seed, nodes, length, kinds, LEADER_SHARE)
    }

    /// Like [`Schedule::generate`], with faults aimed at one node hitting the
    /// leader with probability `leader_share` (1.0: every one, as a failover
    /// measurement wants; a split then always cuts the leader off).
    pub fn generate_aimed(
        seed: u64,
        nodes: usize,
        length: Duration,
        kinds: &[FaultKind],
        leader_share: f64,
    ) -> Schedule {
        let leader_share = leader_share.clamp(0.0, 1.0);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let kinds: Vec<FaultKind> = kinds.iter().copied().filter(|kind| possible(*kind, nodes)).collect();
        let mut steps = Vec::new();
        let mut used = Duration::ZERO;
        while !kinds.is_empty() {
            let quiet = Duration::from_millis(rng.gen_range(2_000..5_000));
            let hold = Duration::from_millis(rng.gen_range(3_000..10_000));
            if used + quiet + hold > length {
                break;
            }
            used += quiet + hold;
            let kind = *kinds.choose(&mut rng).expect("not empty");
            steps.push(Step { quiet, fault: fault_of(kind, nodes, leader_share, &mut rng), hold });
        }
        Schedule { seed, steps }
    }

    /// Every step a fault of `kind`?
    pub fn count(&self, kind: FaultKind) -> usize {
        self.steps.iter().filter(|step| step.fault.kind() == kind).count()
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "schedule of seed {} ({} steps):", self.seed, self.steps.len())?;
        let mut at = Duration::ZERO;
        for (index, step) in self.steps.iter().enumerate() {
            at += step.quiet;
            writeln!(
                f,
                "  {index:>3}. at {:>6.1} s for {:>4.1} s: {}",
                at.as_secs_f64(),
                step.hold.as_secs_f64(),
                step.fault
            )?;
            at += step.hold;
        }
        Ok(())
    }
}

fn possible(kind: FaultKind, nodes: usize) -> bool {
    match kind {
        FaultKind::Split | FaultKind::Bridge => nodes >= 3,
        _ => nodes >= 2,
    }
}

/// How often a fault aimed at one node hits the leader, by default.
pub const LEADER_SHARE: f64 = 0.4;

fn who(rng: &mut ChaCha8Rng, nodes: usize, leader_share: f64) -> Who {
    if rng.gen_bool(leader_share) {
        Who::Leader
    } else {
        Who::Follower(rng.gen_range(0..nodes.max(2) - 1))
    }
}

fn fault_of(kind: FaultKind, nodes: usize, leader_share: f64, rng: &mut ChaCha8Rng) -> Fault {
    let who = |rng: &mut ChaCha8Rng, nodes| who(rng, nodes, leader_share);
    match kind {
        FaultKind::Kill => Fault::Kill(who(rng, nodes)),
        FaultKind::Pause => Fault::Pause(who(rng, nodes)),
        FaultKind::Isolate => Fault::Isolate(who(rng, nodes)),
        FaultKind::Split => {
            let minority = rng.gen_range(1..=(nodes - 1) / 2).max(1);
            let with_leader = rng.gen_bool(0.5) || leader_share >= 1.0;
            Fault::Split { minority, with_leader }
        }
        FaultKind::Bridge => Fault::Bridge(who(rng, nodes)),
        FaultKind::OneWay => Fault::OneWay(who(rng, nodes)),
        FaultKind::Loss => Fault::Loss { who: who(rng, nodes), percent: rng.gen_range(10..=40) },
        FaultKind::DiskFull => Fault::DiskFull(who(rng, nodes)),
        FaultKind::ClockJump => {
            let minutes = rng.gen_range(5..=120i64);
            let sign = if rng.gen_bool(0.5) { 1 } else { -1 };
            Fault::ClockJump { who: who(rng, nodes), seconds: sign * minutes * 60 }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn kinds_parse_from_their_names() {
        for kind in FaultKind::ALL {
            assert_eq!(kind.name().parse::<FaultKind>(), Ok(kind));
        }
        assert!("flood".parse::<FaultKind>().unwrap_err().contains("known: kill"));
    }

    proptest! {
        #[test]
        fn a_seed_replays_the_same_schedule_within_the_length(seed: u64, nodes in 2usize..6, secs in 0u64..300) {
            let length = Duration::from_secs(secs);
            let first = Schedule::generate(seed, nodes, length, &FaultKind::ALL);
            prop_assert_eq!(&first, &Schedule::generate(seed, nodes, length, &FaultKind::ALL));
            let total: Duration = first.steps.iter().map(|step| step.quiet + step.hold).sum();
            prop_assert!(total <= length);
            for step in &first.steps {
                if let Fault::Split { minority, .. } = step.fault {
                    prop_assert!(minority >= 1 && 2 * minority < nodes.max(3));
                }
                prop_assert!(nodes >= 3 || !matches!(step.fault.kind(), FaultKind::Bridge | FaultKind::Split));
            }
        }

        #[test]
        fn a_leader_share_of_one_aims_every_fault_at_the_leader(seed: u64) {
            let schedule = Schedule::generate_aimed(seed, 3, Duration::from_secs(120), &FaultKind::ALL, 1.0);
            for step in &schedule.steps {
                let hits_leader = match step.fault {
                    Fault::Split { with_leader, .. } => with_leader,
                    Fault::Kill(who) | Fault::Pause(who) | Fault::Isolate(who) | Fault::Bridge(who)
                    | Fault::OneWay(who) | Fault::DiskFull(who) => who == Who::Leader,
                    Fault::Loss { who, .. } | Fault::ClockJump { who, .. } => who == Who::Leader,
                };
                prop_assert!(hits_leader, "{}", step.fault);
            }
        }

        #[test]
        fn only_the_kinds_asked_for_are_drawn(seed: u64) {
            let schedule = Schedule::generate(seed, 3, Duration::from_secs(120), &[FaultKind::Kill, FaultKind::Isolate]);
            prop_assert!(schedule.steps.len() >= 8);
            prop_assert!(schedule.steps.iter().all(|step| matches!(step.fault, Fault::Kill(_) | Fault::Isolate(_))));
        }
    }
}
