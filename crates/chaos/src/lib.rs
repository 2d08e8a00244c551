//! # flotilla-chaos
//!
//! Faults, a workload and history checkers for Flotilla clusters; the
//! `flotilla-chaos` binary runs them against loopback processes or the
//! containers of `deploy/compose`.
//!
//! ```text
//!   schedule (seeded) ──► runner ──► target: kill, pause, cut, loss, disk, clock
//!                           │
//!   workload (clients) ──► recorder ──► checks: linearizable tags, acknowledged
//!                                       content readable, replication restored,
//!                                       one leader per term, no unexcused answer
//! ```
//!
//! - [`schedule`]: the seeded list of faults; a seed replays its schedule.
//! - [`target`]: what a fault needs from a cluster ([`target::loopback`],
//!   [`target::docker`]).
//! - [`workload`]: client threads that push, move tags, read and start tasks.
//! - [`rebalance`]: a spare node that joins and is drained during the faults.
//! - [`history`]: what the clients saw.
//! - [`checks`] and [`linearizability`]: the promises checked after healing.
//! - [`runner`] plays a run; [`report`] prints what it found.

pub mod checks;
pub mod history;
pub mod linearizability;
pub mod rebalance;
pub mod report;
pub mod runner;
pub mod schedule;
pub mod target;
pub mod workload;

pub use report::Report;
pub use runner::{run, RunOptions};
pub use schedule::{Fault, FaultKind, Schedule};
