//! Lost elections settled fast: the split-vote breaker retries a round lost
//! to competing candidates after a fresh random delay instead of openraft's
//! fixed one, and the campaign hint asks a voter that refused this node for
//! its longer log to campaign now.
//!
//! openraft 0.9 draws each node's election timeout once, when the node
//! starts, and a candidate whose round fails waits that same timeout (plus up
//! to one tick) before trying again. Two survivors of a dead leader that
//! campaign at nearly the same moment therefore split the vote, wait nearly
//! the same time, and can split it again; and a survivor whose log is longer
//! than a competing candidate's is refused by it (that one voted for itself)
//! and waits a whole timeout although nobody else can win. Both showed up as
//! the 1.3–1.9 s tail of the failover benchmark.
//!
//! The breaker watches the answers to this node's vote requests (the network
//! client reports each one as a [`VoteOutcome`]). When a round can no longer
//! reach a quorum *and* what stopped it was only competing candidates (and
//! unreachable peers), it asks openraft for a new election after a delay drawn
//! afresh for every retry, short next to the election timeout. Every other
//! loss is left to openraft's own timer, unchanged:
//!
//! - a peer with a longer log refused: this node cannot win, the peer can;
//! - a peer still following a leader refused (its leader lease): there is a
//!   leader, and campaigning faster would only disrupt it;
//! - no peer answered at all: this node is cut off, and faster rounds would
//!   only inflate its term.
//!
//! One loss gets a hint instead: when a peer refuses because its log is
//! longer, that peer is the one that can win, but it may campaign much later.
//! openraft lengthens every election timeout of a node by twice the maximum
//! timeout once a vote request of that node was refused for a shorter log,
//! and clears the mark only when the node's own timer next campaigns; so a
//! node refused that way in one failover often carries the mark into the next,
//! where it has the longer log, and campaigns 0.65–0.85 s after the refused
//! candidate (the largest part of the failover tail). The breaker asks it to
//! campaign now (`RaftService.Campaign`), only the round's first such peer
//! (with five voters, hinting two made them split the next round);
//! the peer does so only if no leader has reached it for
//! [`CAMPAIGN_QUIET_HEARTBEATS`] heartbeats, so a follower of a live leader
//! ignores the hint.
//!
//! Safety is openraft's: the breaker and the hint only trigger an election,
//! which any timer may do at any moment; they never grant or count a vote.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::RPCError;
use openraft::raft::{VoteRequest, VoteResponse};
use openraft::{RaftMetrics, ServerState, Vote};
use parking_lot::Mutex;
use rand::Rng;
use tokio::sync::mpsc;

use crate::network::client::rpc_campaign;
use crate::types::{NodeAddr, NodeId, Raft};

/// How a peer answered one of this node's vote requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Granted,
    /// Refused by a peer that has voted for another candidate (or itself) in
    /// this term or a later one, with no longer log than this node's.
    CompetingCandidate,
    /// Refused because the peer's log is longer.
    GreaterLog,
    /// Refused by a peer that still follows a leader (its vote is committed).
    LeaderLease,
    /// No answer: the call failed or timed out.
    Unreachable,
}

impl Answer {
    /// Classifies the result of one vote request.
    pub fn of<E>(
        request: &VoteRequest<NodeId>,
        result: &Result<VoteResponse<NodeId>, RPCError<NodeId, NodeAddr, E>>,
    ) -> Answer
    where
        E: std::error::Error,
    {
        match result {
            Err(_) => Answer::Unreachable,
            Ok(response) if response.vote_granted => Answer::Granted,
            Ok(response) if response.last_log_id > request.last_log_id => Answer::GreaterLog,
            Ok(response) if response.vote.is_committed() => Answer::LeaderLease,
            Ok(_) => Answer::CompetingCandidate,
        }
    }
}

/// One answer to one of this node's vote requests, as the network saw it.
#[derive(Debug, Clone)]
pub struct VoteOutcome {
    /// The vote this node asked for (its term and its own id).
    pub vote: Vote<NodeId>,
    pub peer: NodeId,
    pub answer: Answer,
}

/// Where the network client sends [`VoteOutcome`]s.
pub type VoteOutcomes = mpsc::UnboundedSender<VoteOutcome>;

/// How many heartbeat intervals without a leader's call a voter must have
/// seen before it campaigns when a candidate asks it to.
pub const CAMPAIGN_QUIET_HEARTBEATS: u64 = 3;

/// When a leader last reached this node (an append-entries call, heartbeats
/// included); shared by clones.
#[derive(Debug, Clone, Default)]
pub struct LeaderContact {
    last: Arc<Mutex<Option<Instant>>>,
}

impl LeaderContact {
    /// A leader's call arrived now.
    pub fn touch(&self) {
        *self.last.lock() = Some(Instant::now());
    }

    /// How long ago a leader last called; `None` if none has since start.
    pub fn since(&self) -> Option<Duration> {
        self.last.lock().map(|last| last.elapsed())
    }
}

/// Whether a node asked to campaign by a candidate with a shorter log should:
/// it is a voter that is neither leader nor learner, and no leader has
/// reached it for `quiet` (or ever, since it started).
pub fn campaigns_when_asked(
    metrics: &RaftMetrics<NodeId, NodeAddr>,
    leader_called: Option<Duration>,
    quiet: Duration,
) -> bool {
    matches!(metrics.state, ServerState::Follower | ServerState::Candidate)
        && metrics.membership_config.membership().voter_ids().any(|id| id == metrics.id)
        && leader_called.is_none_or(|since| since >= quiet)
}

/// The answers collected for one candidacy (one vote of this node).
#[derive(Debug)]
pub struct Round {
    vote: Vote<NodeId>,
    answers: BTreeMap<NodeId, Answer>,
    retry_scheduled: bool,
    hint_sent: bool,
}

/// What a round's answers so far call for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A quorum can still be reached (or has been): wait for it.
    Undecided,
    /// Lost in a way only openraft's own timer should answer.
    LeaveToTimer,
    /// Lost to competing candidates only: campaign again soon.
    Retry,
}

impl Round {
    pub fn new(vote: Vote<NodeId>) -> Round {
        Round { vote, answers: BTreeMap::new(), retry_scheduled: false, hint_sent: false }
    }

    /// Records `peer`'s answer (the first answer of a peer counts) and says
    /// whether to hint `peer` to campaign: only the round's first refusal for
    /// a longer log is hinted. Hinting every such refuser made two of five
    /// voters campaign at once and split the next round; a hinted peer with a
    /// shorter log than another refuser is refused in turn and hints that one.
    pub fn record(&mut self, peer: NodeId, answer: Answer) -> bool {
        if self.answers.contains_key(&peer) {
            return false;
        }
        self.answers.insert(peer, answer);
        let hint = answer == Answer::GreaterLog && !self.hint_sent;
        self.hint_sent |= hint;
        hint
    }

    /// The verdict for a round of `me` among `voters` (one configuration).
    pub fn verdict(&self, me: NodeId, voters: &BTreeSet<NodeId>) -> Verdict {
        if !voters.contains(&me) {
            return Verdict::LeaveToTimer;
        }
        // This node's own vote counts towards the majority.
        let needed = voters.len() / 2;
        let peers = voters.iter().filter(|&&id| id != me);
        let (mut granted, mut open) = (0, 0);
        let mut refusals = Vec::new();
        for peer in peers {
            match self.answers.get(peer) {
                None => open += 1,
                Some(Answer::Granted) => granted += 1,
                Some(&refusal) => refusals.push(refusal),
            }
        }
        if granted + open >= needed {
            return Verdict::Undecided;
        }
        let only_competitors =
            refusals.iter().all(|answer| matches!(answer, Answer::CompetingCandidate | Answer::Unreachable));
        let any_competitor = refusals.contains(&Answer::CompetingCandidate);
        if only_competitors && any_competitor {
            Verdict::Retry
        } else {
            Verdict::LeaveToTimer
        }
    }
}

/// Runs the breaker and the hint for `raft` (node `me`) until every sender of
/// `outcomes` is gone. The round's first refusal for a longer log sends
/// that peer the hint at once. A retry waits a delay drawn from `delay` afresh
/// each time, then campaigns only while no leader is known and no later term
/// has been seen.
pub async fn settle_lost_rounds(
    raft: Raft,
    me: NodeId,
    mut outcomes: mpsc::UnboundedReceiver<VoteOutcome>,
    delay: Range<Duration>,
) {
    let mut round: Option<Round> = None;
    while let Some(outcome) = outcomes.recv().await {
        if outcome.vote.leader_id().voted_for() != Some(me) {
            continue;
        }
        let current = match &mut round {
            Some(round) if round.vote == outcome.vote => round,
            // A late answer to an earlier candidacy.
            Some(round) if round.vote > outcome.vote => continue,
            _ => round.insert(Round::new(outcome.vote)),
        };
        let hint = current.record(outcome.peer, outcome.answer);
        let metrics = raft.metrics().borrow().clone();
        if hint {
            if let Some(peer) = metrics.membership_config.membership().get_node(&outcome.peer) {
                let (addr, peer_id) = (peer.rpc_addr.clone(), outcome.peer);
                tokio::spawn(async move {
                    tracing::info!(peer = peer_id, "refused for a shorter log: asking the peer to campaign");
                    if let Err(error) = rpc_campaign(&addr).await {
                        tracing::debug!(peer = peer_id, %error, "the campaign hint did not arrive");
                    }
                });
            }
        }
        if current.retry_scheduled {
            continue;
        }
        let configs = metrics.membership_config.membership().get_joint_config();
        // During a joint change openraft needs a majority of both; leave it to the timer.
        let [voters] = configs.as_slice() else { continue };
        if current.verdict(me, voters) != Verdict::Retry {
            continue;
        }
        current.retry_scheduled = true;
        let wait = rand::thread_rng().gen_range(delay.clone());
        let (raft, vote) = (raft.clone(), current.vote);
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            if still_leaderless_in(&raft.metrics().borrow(), vote) {
                tracing::info!(
                    term = vote.leader_id().term,
                    wait_ms = wait.as_millis() as u64,
                    "split vote: campaigning again"
                );
                let _ = raft.trigger().elect().await;
            }
        });
    }
}

/// Whether nothing has settled since this node lost the round of `vote`: no
/// leader is known and no later term has been seen. The node may still be a
/// candidate, or a follower that took up a competitor's vote of the same
/// term from its refusal (openraft orders equal terms by node id). With
/// three voters and one gone, that term can no longer produce a leader; with
/// five, a competitor may still be collecting votes in it, and the retry may
/// cost it that term: a round lost, never safety.
fn still_leaderless_in(metrics: &RaftMetrics<NodeId, NodeAddr>, vote: Vote<NodeId>) -> bool {
    matches!(metrics.state, ServerState::Candidate | ServerState::Follower)
        && metrics.current_leader.is_none()
        && !metrics.vote.is_committed()
        && metrics.vote.leader_id().term == vote.leader_id().term
}

#[cfg(test)]
mod tests {
    use openraft::CommittedLeaderId;
    use proptest::prelude::*;

    use super::*;

    fn voters(ids: &[NodeId]) -> BTreeSet<NodeId> {
        ids.iter().copied().collect()
    }

    fn round(answers: &[(NodeId, Answer)]) -> Round {
        let mut round = Round::new(Vote::new(7, 1));
        for &(peer, answer) in answers {
            round.record(peer, answer);
        }
        round
    }

    #[test]
    fn a_round_with_a_possible_quorum_is_undecided() {
        let three = voters(&[1, 2, 3]);
        assert_eq!(round(&[]).verdict(1, &three), Verdict::Undecided);
        assert_eq!(round(&[(2, Answer::CompetingCandidate)]).verdict(1, &three), Verdict::Undecided);
        assert_eq!(
            round(&[(2, Answer::Granted), (3, Answer::CompetingCandidate)]).verdict(1, &three),
            Verdict::Undecided
        );
        let five = voters(&[1, 2, 3, 4, 5]);
        assert_eq!(
            round(&[(2, Answer::CompetingCandidate), (3, Answer::Unreachable)]).verdict(1, &five),
            Verdict::Undecided
        );
    }

    #[test]
    fn only_the_first_refusal_for_a_longer_log_is_hinted() {
        let mut round = Round::new(Vote::new(7, 1));
        assert!(!round.record(2, Answer::CompetingCandidate));
        assert!(round.record(3, Answer::GreaterLog));
        assert!(!round.record(3, Answer::GreaterLog), "a repeated answer is not hinted again");
        assert!(!round.record(4, Answer::GreaterLog), "a second refuser of five voters is not hinted");
        let mut round = Round::new(Vote::new(8, 1));
        assert!(!round.record(2, Answer::Granted));
        assert!(!round.record(2, Answer::GreaterLog), "a peer's first answer counts");
    }

    #[test]
    fn a_vote_split_with_a_competitor_is_retried() {
        let three = voters(&[1, 2, 3]);
        let split = round(&[(2, Answer::CompetingCandidate), (3, Answer::Unreachable)]);
        assert_eq!(split.verdict(1, &three), Verdict::Retry);
        let five = voters(&[1, 2, 3, 4, 5]);
        let split =
            round(&[(2, Answer::CompetingCandidate), (3, Answer::Unreachable), (4, Answer::CompetingCandidate)]);
        assert_eq!(split.verdict(1, &five), Verdict::Retry);
    }

    #[test]
    fn a_longer_log_a_live_leader_or_silence_is_left_to_the_timer() {
        let three = voters(&[1, 2, 3]);
        for refusal in [Answer::GreaterLog, Answer::LeaderLease] {
            assert_eq!(round(&[(2, refusal), (3, Answer::Unreachable)]).verdict(1, &three), Verdict::LeaveToTimer);
            assert_eq!(
                round(&[(2, refusal), (3, Answer::CompetingCandidate)]).verdict(1, &three),
                Verdict::LeaveToTimer
            );
        }
        assert_eq!(
            round(&[(2, Answer::Unreachable), (3, Answer::Unreachable)]).verdict(1, &three),
            Verdict::LeaveToTimer
        );
    }

    #[test]
    fn a_learner_never_retries() {
        let split = round(&[(2, Answer::CompetingCandidate), (3, Answer::CompetingCandidate)]);
        assert_eq!(split.verdict(9, &voters(&[1, 2, 3])), Verdict::LeaveToTimer);
    }

    #[test]
    fn answers_are_classified_from_the_response() {
        let request = VoteRequest::new(Vote::new(7, 1), Some(openraft::LogId::new(CommittedLeaderId::new(6, 2), 40)));
        let answer = |vote: Vote<NodeId>, granted: bool, last: u64| {
            let response =
                VoteResponse::new(vote, Some(openraft::LogId::new(CommittedLeaderId::new(6, 2), last)), granted);
            Answer::of::<openraft::error::RaftError<NodeId>>(&request, &Ok(response))
        };
        assert_eq!(answer(Vote::new(7, 1), true, 40), Answer::Granted);
        assert_eq!(answer(Vote::new(7, 3), false, 40), Answer::CompetingCandidate);
        assert_eq!(answer(Vote::new(7, 3), false, 41), Answer::GreaterLog);
        assert_eq!(answer(Vote::new_committed(6, 2), false, 39), Answer::LeaderLease);
        let failed: Result<VoteResponse<NodeId>, RPCError<NodeId, NodeAddr, openraft::error::RaftError<NodeId>>> =
            Err(RPCError::Network(openraft::error::NetworkError::new(&std::io::Error::other("reset"))));
        assert_eq!(Answer::of(&request, &failed), Answer::Unreachable);
    }

    fn metrics_of(id: NodeId, state: ServerState, voters: &[NodeId]) -> RaftMetrics<NodeId, NodeAddr> {
        let mut metrics = RaftMetrics::new_initial(id);
        metrics.state = state;
        let membership = openraft::Membership::new(vec![voters.iter().copied().collect()], ());
        metrics.membership_config = Arc::new(openraft::StoredMembership::new(None, membership));
        metrics
    }

    #[test]
    fn a_voter_campaigns_when_asked_only_if_no_leader_called_lately() {
        let quiet = Duration::from_millis(150);
        let follower = metrics_of(2, ServerState::Follower, &[1, 2, 3]);
        assert!(campaigns_when_asked(&follower, None, quiet), "no leader since start");
        assert!(campaigns_when_asked(&follower, Some(Duration::from_millis(400)), quiet));
        assert!(!campaigns_when_asked(&follower, Some(Duration::from_millis(40)), quiet), "a live leader");
        let candidate = metrics_of(2, ServerState::Candidate, &[1, 2, 3]);
        assert!(campaigns_when_asked(&candidate, Some(Duration::from_secs(1)), quiet));
        let leader = metrics_of(2, ServerState::Leader, &[1, 2, 3]);
        assert!(!campaigns_when_asked(&leader, Some(Duration::from_secs(1)), quiet));
        let learner = metrics_of(4, ServerState::Learner, &[1, 2, 3]);
        assert!(!campaigns_when_asked(&learner, None, quiet));
        let not_a_voter = metrics_of(4, ServerState::Follower, &[1, 2, 3]);
        assert!(!campaigns_when_asked(&not_a_voter, None, quiet));
    }

    #[test]
    fn leader_contact_reports_the_last_call() {
        let contact = LeaderContact::default();
        assert_eq!(contact.since(), None);
        contact.clone().touch();
        assert!(contact.since().unwrap() < Duration::from_secs(5));
    }

    fn any_answer() -> impl Strategy<Value = Answer> {
        prop_oneof![
            Just(Answer::Granted),
            Just(Answer::CompetingCandidate),
            Just(Answer::GreaterLog),
            Just(Answer::LeaderLease),
            Just(Answer::Unreachable),
        ]
    }

    proptest! {
        /// Whatever the answers and their repeats, a round sends one hint at
        /// most, to the first peer whose first answer was a longer log.
        #[test]
        fn at_most_one_hint_per_round(answers in proptest::collection::vec((2u64..=5, any_answer()), 0..12)) {
            let mut round = Round::new(Vote::new(3, 1));
            let hinted: Vec<NodeId> =
                answers.iter().filter(|(peer, answer)| round.record(*peer, *answer)).map(|(peer, _)| *peer).collect();
            let mut first_answers = BTreeMap::new();
            for (peer, answer) in &answers {
                first_answers.entry(*peer).or_insert(*answer);
            }
            let mut seen = BTreeSet::new();
            let expected = answers
                .iter()
                .filter(|(peer, _)| seen.insert(*peer))
                .find(|(peer, _)| first_answers[peer] == Answer::GreaterLog)
                .map(|(peer, _)| *peer);
            prop_assert_eq!(hinted, expected.into_iter().collect::<Vec<_>>());
        }

        /// A retry is only ever called for when no quorum is reachable any
        /// more and nothing but competing candidates (and silence) stood in
        /// the way, with at least one competitor.
        #[test]
        fn retry_only_when_lost_to_competitors(
            voter_count in 1usize..=7,
            answers in proptest::collection::vec(proptest::option::of(any_answer()), 7),
        ) {
            let ids: Vec<NodeId> = (1..=voter_count as NodeId).collect();
            let voters = voters(&ids);
            let mut round = Round::new(Vote::new(3, 1));
            for (peer, answer) in ids.iter().skip(1).zip(&answers) {
                if let Some(answer) = answer {
                    round.record(*peer, *answer);
                }
            }
            let peer_answers: Vec<Option<Answer>> = ids.iter().skip(1).map(|peer| round.answers.get(peer).copied()).collect();
            let granted = peer_answers.iter().filter(|a| **a == Some(Answer::Granted)).count();
            let open = peer_answers.iter().filter(|a| a.is_none()).count();
            let verdict = round.verdict(1, &voters);
            let still_possible = 1 + granted + open > voter_count / 2;
            prop_assert_eq!(verdict == Verdict::Undecided, still_possible);
            if verdict == Verdict::Retry {
                prop_assert!(peer_answers.contains(&Some(Answer::CompetingCandidate)));
                prop_assert!(!peer_answers.contains(&Some(Answer::GreaterLog)));
                prop_assert!(!peer_answers.contains(&Some(Answer::LeaderLease)));
            }
        }
    }
}
