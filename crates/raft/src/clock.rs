//! Cluster time: the wall clock every timestamp in the replicated state and
//! every age check (garbage collection's grace period, upload expiry, task
//! schedules, token expiry) is read from.
//!
//! A node's own wall clock may jump (an operator's `date -s`, a VM resumed
//! from a snapshot, NTP stepping after a long drift). Timestamps from such a
//! clock would be wrong for good once they are replicated: a blob stamped
//! 90 minutes in the past by a node whose clock went back is older than a
//! one-hour grace period the moment it is recorded, and another node's
//! garbage collection would take it. So cluster time is
//!
//! - **anchored to the voters' median**: every few seconds the node reads the
//!   raw wall clocks of the voters it can reach (its own included, each
//!   corrected by half the round trip) and anchors cluster time at their
//!   median, so a minority of wrong clocks, this node's own among them,
//!   changes nothing ([`median_offset`]);
//! - **carried by the monotonic clock in between**: `now_ms` is the anchor
//!   plus the monotonic time since it was set, so a jump of this node's wall
//!   clock between two anchors is not seen at all.
//!
//! The node's clock task (`flotilla-node`, `cluster::clock`) sets the anchor;
//! until it first does, cluster time is this node's wall clock.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use parking_lot::RwLock;

/// Cluster time at an instant of this process's monotonic clock.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    cluster_ms: u64,
    at: Instant,
}

/// A clock that reads cluster time: an anchor carried forward by the
/// monotonic clock. The process has one ([`now_ms`] and friends).
#[derive(Debug)]
pub struct ClusterClock {
    anchor: RwLock<Anchor>,
}

impl ClusterClock {
    /// Starts at this node's wall clock.
    pub fn new() -> ClusterClock {
        ClusterClock { anchor: RwLock::new(Anchor { cluster_ms: wall_ms(), at: Instant::now() }) }
    }

    /// Milliseconds since the Unix epoch in cluster time.
    pub fn now_ms(&self) -> u64 {
        let anchor = *self.anchor.read();
        anchor.cluster_ms.saturating_add(anchor.at.elapsed().as_millis() as u64)
    }

    /// Anchors at this node's wall clock plus `offset_ms`, as of now.
    pub fn anchor_at_offset(&self, offset_ms: i64) {
        let at = Instant::now();
        let cluster_ms = wall_ms().saturating_add_signed(offset_ms);
        *self.anchor.write() = Anchor { cluster_ms, at };
    }

    /// How far cluster time is ahead of this node's wall clock (negative: behind).
    pub fn offset_ms(&self) -> i64 {
        self.now_ms() as i64 - wall_ms() as i64
    }
}

impl Default for ClusterClock {
    fn default() -> Self {
        ClusterClock::new()
    }
}

fn clock() -> &'static ClusterClock {
    static CLOCK: OnceLock<ClusterClock> = OnceLock::new();
    CLOCK.get_or_init(ClusterClock::new)
}

/// Milliseconds since the Unix epoch in cluster time.
pub fn now_ms() -> u64 {
    clock().now_ms()
}

/// This node's own wall clock, in milliseconds since the Unix epoch: what
/// peers compare ([`median_offset`]), and nothing else should read.
pub fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as u64)
}

/// Anchors the process's cluster time at this node's wall clock plus
/// `offset_ms` (the voters' median offset from it), as of now.
pub fn anchor_at_offset(offset_ms: i64) {
    clock().anchor_at_offset(offset_ms);
}

/// How far the process's cluster time is ahead of this node's wall clock.
pub fn offset_ms() -> i64 {
    clock().offset_ms()
}

/// The offset to anchor at, from the offsets of the voters' clocks that
/// answered (this node's own, 0, among them): the median. With an even
/// count the two middle values are equally good witnesses, and the one
/// closer to this node's own clock is taken (the smaller change). `None`
/// without a majority of `voters`: too few clocks to outvote a wrong one.
pub fn median_offset(offsets: &[i64], voters: usize) -> Option<i64> {
    if offsets.is_empty() || offsets.len() * 2 <= voters {
        return None;
    }
    let mut sorted = offsets.to_vec();
    sorted.sort_unstable();
    let middle = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        return Some(sorted[middle]);
    }
    let (low, high) = (sorted[middle - 1], sorted[middle]);
    Some(if low.unsigned_abs() <= high.unsigned_abs() { low } else { high })
}

/// The offset of a peer's wall clock from this node's, from one exchange:
/// the peer read `peer_ms` between `sent_ms` and `received_ms` of this
/// node's wall clock, so it is compared with their midpoint.
pub fn peer_offset(sent_ms: u64, peer_ms: u64, received_ms: u64) -> i64 {
    let midpoint = sent_ms / 2 + received_ms / 2 + (sent_ms % 2 + received_ms % 2) / 2;
    peer_ms as i64 - midpoint as i64
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn one_wrong_clock_of_three_is_outvoted_whichever_it_is() {
        // This node is 97 minutes behind: both peers say so.
        assert_eq!(median_offset(&[0, 5_820_000, 5_820_010], 3), Some(5_820_000));
        // A peer is 2 hours ahead: this node keeps its own time.
        assert_eq!(median_offset(&[0, 7_200_000, 12], 3), Some(12));
    }

    #[test]
    fn without_a_majority_of_voters_there_is_no_verdict() {
        assert_eq!(median_offset(&[0], 3), None);
        assert_eq!(median_offset(&[0, 40], 5), None);
        assert_eq!(median_offset(&[], 1), None);
        // A single node is its own majority.
        assert_eq!(median_offset(&[0], 1), Some(0));
    }

    #[test]
    fn of_two_witnesses_the_smaller_change_is_taken() {
        assert_eq!(median_offset(&[0, 5_820_000], 3), Some(0));
        assert_eq!(median_offset(&[-300, 0, 5_820_000, 7], 5), Some(0));
    }

    #[test]
    fn a_peer_is_compared_with_the_midpoint_of_the_exchange() {
        assert_eq!(peer_offset(1_000, 1_510, 1_020), 500);
        assert_eq!(peer_offset(1_000, 990, 1_020), -20);
    }

    #[test]
    fn cluster_time_follows_the_anchor_and_then_the_monotonic_clock() {
        let clock = ClusterClock::new();
        assert!(clock.offset_ms().abs() < 1_000, "starts at the wall clock");
        clock.anchor_at_offset(3_600_000);
        let ahead = clock.offset_ms();
        assert!((3_599_000..=3_601_000).contains(&ahead), "offset {ahead}");
        let first = clock.now_ms();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(clock.now_ms() >= first + 20);
        clock.anchor_at_offset(0);
        assert!(clock.offset_ms().abs() < 1_000);
    }

    proptest! {
        #[test]
        fn the_median_lies_within_the_honest_clocks_when_they_are_a_majority(
            honest in proptest::collection::vec(-50i64..50, 2..4),
            liars in proptest::collection::vec(any::<i32>(), 0..2),
        ) {
            prop_assume!(liars.len() < honest.len());
            let mut offsets = honest.clone();
            offsets.extend(liars.iter().map(|&liar| i64::from(liar)));
            let voters = offsets.len();
            let median = median_offset(&offsets, voters).expect("every voter answered");
            let (low, high) = (*honest.iter().min().unwrap(), *honest.iter().max().unwrap());
            prop_assert!(low <= median && median <= high, "{median} outside {low}..={high} for {offsets:?}");
        }
    }
}
