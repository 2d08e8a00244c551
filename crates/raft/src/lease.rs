//! Leader leases: a leader that a quorum heard from a moment ago answers a
//! read index from its own state, without a heartbeat round.
//!
//! A read-index round costs the leader one heartbeat to every voter for every
//! batch of reads, its own and those the followers ask it for; with reads
//! spread over all nodes those rounds are most of the leader's work, and
//! follower reads stop scaling. The lease removes them while it holds.
//!
//! # Why it is safe
//!
//! openraft's followers refuse to vote for anyone during `leader_lease`
//! (= `election_timeout_max`) after each append they accept from the leader
//! they follow, by their own monotonic clock (`Engine::handle_vote_req`). So if
//! a quorum of voters accepted appends this leader *sent* at time `t` under its
//! current vote, no other candidate can collect a quorum of votes before
//! `t + leader_lease` as those followers count time: at least one voter of any
//! quorum is still refusing. The leader itself is not bound by the refusal, but
//! granting a vote ends its leadership, which this check sees (below) before
//! the candidate can have committed anything.
//!
//! The leader trusts its lease for only [`LEASE_READ_WINDOW_SHARE`] of that
//! time after `t`, by its own monotonic clock: enough margin for the clocks of
//! two machines to run at rates differing by up to 2× (NTP keeps real ones
//! within parts per million) and for the follower to have received the append
//! after it was sent (which only lengthens the follower's refusal). Wall-clock
//! jumps and skew do not matter: only `Instant` durations are compared, each on
//! one machine.
//!
//! A node that restarts forgets when it last accepted an append, and openraft
//! would let it vote at once; [`startup_hold`] is how long the vote
//! handler holds votes back after start so the promise outlives a restart.
//!
//! # The read index it gives
//!
//! Not the applied index: openraft answers a client's write as soon as the
//! leader applied it, and publishes its metrics a moment later, so a reader
//! could see an acknowledged write missing from `last_applied`. The last log
//! index is published when the entry is appended, long before it can commit,
//! so every write acknowledged before the check is at or below it. Readers wait
//! until their replica applied that index (entries still in flight commit
//! within a replication round trip, as with a read-index round).

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use openraft::{ServerState, Vote};
use parking_lot::Mutex;

use crate::types::{NodeAddr, NodeId, Raft};

/// The lease is trusted for `leader_lease / LEASE_READ_WINDOW_SHARE` after the
/// acknowledged append was sent.
pub const LEASE_READ_WINDOW_SHARE: u32 = 2;

/// What openraft's metrics say, as far as a lease cares.
pub type Metrics = openraft::RaftMetrics<NodeId, NodeAddr>;

/// The latest append each peer accepted under some vote, by send time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub vote: Vote<NodeId>,
    pub sent: Instant,
}

/// The appends the followers accepted from this node, and the window in which
/// a quorum of them makes a lease.
#[derive(Debug)]
pub struct LeaderLease {
    acks: Mutex<HashMap<NodeId, Ack>>,
    window: Duration,
}

impl LeaderLease {
    /// A lease trusted for `leader_lease / LEASE_READ_WINDOW_SHARE`.
    pub fn new(leader_lease: Duration) -> Self {
        LeaderLease { acks: Mutex::new(HashMap::new()), window: leader_lease / LEASE_READ_WINDOW_SHARE }
    }

    /// `target` accepted an append (entries or a heartbeat) this node sent at
    /// `sent` under `vote`. Older news than what is known is ignored.
    pub fn record_ack(&self, target: NodeId, vote: Vote<NodeId>, sent: Instant) {
        let mut acks = self.acks.lock();
        let known = acks.get(&target);
        if known.is_none_or(|known| known.vote != vote || known.sent < sent) {
            acks.insert(target, Ack { vote, sent });
        }
    }

    /// The read index the lease allows at `now`, or `None` when this node does
    /// not lead, the membership is changing, or no quorum acknowledged it recently.
    pub fn read_index(&self, metrics: &Metrics, now: Instant) -> Option<u64> {
        if metrics.state != ServerState::Leader || metrics.current_leader != Some(metrics.id) {
            return None;
        }
        if !metrics.vote.is_committed() || metrics.vote.leader_id().voted_for() != Some(metrics.id) {
            return None;
        }
        let configs = metrics.membership_config.membership().get_joint_config();
        // A joint configuration needs a quorum of each half; rare and brief, so
        // reads take the heartbeat round then.
        let [voters] = configs.as_slice() else { return None };
        let holds = quorum_acked(metrics.id, &metrics.vote, voters, &self.acks.lock(), self.window, now);
        if holds {
            metrics.last_log_index
        } else {
            None
        }
    }
}

/// Whether `me` and the voters that accepted an append sent under `vote`
/// within `window` before `now` make a majority of `voters`.
pub fn quorum_acked(
    me: NodeId,
    vote: &Vote<NodeId>,
    voters: &BTreeSet<NodeId>,
    acks: &HashMap<NodeId, Ack>,
    window: Duration,
    now: Instant,
) -> bool {
    let fresh = voters
        .iter()
        .filter(|voter| {
            **voter == me
                || acks
                    .get(voter)
                    .is_some_and(|ack| ack.vote == *vote && now.saturating_duration_since(ack.sent) < window)
        })
        .count();
    fresh * 2 > voters.len()
}

/// openraft's `leader_lease` under `config`: its `election_timeout_max`.
pub fn leader_lease(config: &openraft::Config) -> Duration {
    Duration::from_millis(config.election_timeout_max)
}

/// How long a node that just started holds back its votes: the refusal it may
/// have promised a leader before it stopped, one leader lease (see the module docs).
pub fn startup_hold(raft: &Raft) -> Duration {
    leader_lease(raft.config())
}

/// Keeps a node that just started from campaigning for [`startup_hold`]:
/// voting for itself would break a refusal it promised before it stopped just
/// as voting for another would. (The vote handler holds other candidates'
/// requests as long; see `network::service`.)
pub fn hold_campaigns_after_start(raft: &Raft) {
    let hold = startup_hold(raft);
    raft.runtime_config().elect(false);
    let raft = raft.clone();
    tokio::spawn(async move {
        tokio::time::sleep(hold).await;
        raft.runtime_config().elect(true);
    });
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const WINDOW: Duration = Duration::from_millis(200);

    fn vote(term: u64, leader: NodeId) -> Vote<NodeId> {
        let mut vote = Vote::new(term, leader);
        vote.commit();
        vote
    }

    #[test]
    fn a_fresh_ack_from_one_of_two_followers_makes_a_quorum_of_three() {
        let now = Instant::now();
        let voters = BTreeSet::from([1, 2, 3]);
        let current = vote(5, 1);
        let mut acks = HashMap::new();
        assert!(!quorum_acked(1, &current, &voters, &acks, WINDOW, now), "the leader alone is no quorum");
        acks.insert(2, Ack { vote: current, sent: now - Duration::from_millis(60) });
        assert!(quorum_acked(1, &current, &voters, &acks, WINDOW, now));
        // Stale, or acknowledged under another vote: no lease.
        assert!(!quorum_acked(1, &current, &voters, &acks, WINDOW, now + WINDOW));
        assert!(!quorum_acked(1, &vote(6, 1), &voters, &acks, WINDOW, now));
    }

    #[test]
    fn five_voters_need_two_fresh_followers() {
        let now = Instant::now();
        let voters = BTreeSet::from([1, 2, 3, 4, 5]);
        let current = vote(2, 3);
        let mut acks = HashMap::from([(1, Ack { vote: current, sent: now })]);
        assert!(!quorum_acked(3, &current, &voters, &acks, WINDOW, now));
        acks.insert(5, Ack { vote: current, sent: now });
        assert!(quorum_acked(3, &current, &voters, &acks, WINDOW, now));
        // An ack from a node that is not a voter (a learner) does not count.
        let voters = BTreeSet::from([1, 2, 3]);
        let acks = HashMap::from([(9, Ack { vote: current, sent: now })]);
        assert!(!quorum_acked(3, &current, &voters, &acks, WINDOW, now));
    }

    #[test]
    fn an_older_ack_never_replaces_a_newer_one_of_the_same_vote() {
        let lease = LeaderLease::new(2 * WINDOW);
        let now = Instant::now();
        let current = vote(1, 1);
        lease.record_ack(2, current, now);
        lease.record_ack(2, current, now - Duration::from_millis(10));
        assert_eq!(lease.acks.lock()[&2].sent, now);
        // A new vote replaces whatever was known.
        let next = vote(2, 1);
        lease.record_ack(2, next, now - Duration::from_millis(10));
        assert_eq!(lease.acks.lock()[&2].vote, next);
    }

    proptest! {
        /// The lease holds exactly when a strict majority of voters (the
        /// leader counting as fresh) acknowledged the current vote within the window.
        #[test]
        fn lease_is_a_majority_of_fresh_acks_of_the_current_vote(
            voter_count in 1u64..=5,
            ages_ms in proptest::collection::vec(proptest::option::of((0u64..400, any::<bool>())), 5),
        ) {
            let now = Instant::now() + Duration::from_secs(1);
            let voters: BTreeSet<NodeId> = (1..=voter_count).collect();
            let current = vote(7, 1);
            let other = vote(6, 2);
            let mut acks = HashMap::new();
            let mut fresh = 1; // the leader, node 1
            for (node, age) in (2..=voter_count).zip(&ages_ms) {
                if let Some((age, same_vote)) = age {
                    let sent = now - Duration::from_millis(*age);
                    acks.insert(node, Ack { vote: if *same_vote { current } else { other }, sent });
                    if *same_vote && Duration::from_millis(*age) < WINDOW {
                        fresh += 1;
                    }
                }
            }
            prop_assert_eq!(quorum_acked(1, &current, &voters, &acks, WINDOW, now), fresh * 2 > voter_count);
        }
    }
}
