//! Linearizability of registers: tags, each a register from tag to digest.
//!
//! A history is a set of [`Event`]s: a write or a read of one key, with the
//! time the client sent it and the time it saw the answer. A write whose
//! answer never came (a timeout, a crash) is *indeterminate*: it may have
//! taken effect at any point after it was sent, or never. The history is
//! linearizable if every completed operation, and any subset of the
//! indeterminate writes, can be put in one order that respects real time
//! (an operation that ended before another began comes first) and in which
//! every read returns the last value written before it (nothing, before any
//! write).
//!
//! Keys are independent registers, so each is checked on its own
//! (linearizability is compositional). Per key the search is Wing & Gong's:
//! repeatedly linearize one of the operations that may go next, backtracking
//! on a contradiction, with a cache of (operations done, register value)
//! configurations already explored, which keeps typical histories of a few
//! hundred operations per key fast.

use std::collections::{BTreeMap, HashSet};

/// What a client did to one key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Op {
    /// Wrote this value.
    Write(String),
    /// Read and saw this value (`None`: the key did not exist).
    Read(Option<String>),
}

/// One operation as a client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub key: String,
    pub op: Op,
    /// When the request was sent (any monotonic clock shared by the clients).
    pub invoked: u64,
    /// When the answer came; `None` if it never did (indeterminate: only
    /// meaningful for writes; an unanswered read tells nothing and is ignored).
    pub completed: Option<u64>,
}

/// A key whose operations no register order explains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub key: String,
    /// The key's events, as given.
    pub events: Vec<Event>,
}

/// Checks every key; the first violating key (in key order), if any.
pub fn check(history: &[Event]) -> Result<(), Violation> {
    let mut by_key: BTreeMap<&str, Vec<Event>> = BTreeMap::new();
    for event in history {
        by_key.entry(&event.key).or_default().push(event.clone());
    }
    for (key, events) in by_key {
        if !is_linearizable(&events) {
            return Err(Violation { key: key.to_owned(), events });
        }
    }
    Ok(())
}

/// Shrinks a violation: drops events one at a time while the rest still
/// violates, so what is printed is a history with no event to spare.
pub fn minimize(violation: &Violation) -> Violation {
    let mut events = violation.events.clone();
    let mut index = 0;
    while index < events.len() {
        let mut fewer = events.clone();
        fewer.remove(index);
        if is_linearizable(&fewer) {
            index += 1;
        } else {
            events = fewer;
        }
    }
    Violation { key: violation.key.clone(), events }
}

/// One key's events: could one register have produced them?
pub fn is_linearizable(events: &[Event]) -> bool {
    // Unanswered reads say nothing.
    let ops: Vec<&Event> =
        events.iter().filter(|event| event.completed.is_some() || matches!(event.op, Op::Write(_))).collect();
    let required = ops.iter().filter(|event| event.completed.is_some()).count();
    let mut search = Search { ops: &ops, seen: HashSet::new() };
    search.explore(&mut vec![false; ops.len()], None, required)
}

struct Search<'a> {
    ops: &'a [&'a Event],
    /// Configurations already explored and found to lead nowhere.
    seen: HashSet<(Vec<bool>, Option<String>)>,
}

impl Search<'_> {
    /// Whether the operations not yet `done` can follow, from register `value`,
    /// with `left` completed ones still to place.
    fn explore(&mut self, done: &mut Vec<bool>, value: Option<&str>, left: usize) -> bool {
        if left == 0 {
            return true;
        }
        let key = (done.clone(), value.map(str::to_owned));
        if self.seen.contains(&key) {
            return false;
        }
        // The next operation must have been sent before every remaining
        // operation's answer came (else that one must go first).
        let horizon = (0..self.ops.len())
            .filter(|&index| !done[index])
            .filter_map(|index| self.ops[index].completed)
            .min()
            .unwrap_or(u64::MAX);
        for index in 0..self.ops.len() {
            let event = self.ops[index];
            if done[index] || event.invoked > horizon {
                continue;
            }
            let next = match &event.op {
                Op::Write(written) => Some(written.as_str()),
                Op::Read(seen) if seen.as_deref() == value => value,
                Op::Read(_) => continue,
            };
            done[index] = true;
            let placed = usize::from(event.completed.is_some());
            if self.explore(done, next, left - placed) {
                return true;
            }
            done[index] = false;
        }
        self.seen.insert(key);
        false
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn write(value: &str, invoked: u64, completed: Option<u64>) -> Event {
        Event { key: "tag".into(), op: Op::Write(value.into()), invoked, completed }
    }

    fn read(value: Option<&str>, invoked: u64, completed: u64) -> Event {
        Event { key: "tag".into(), op: Op::Read(value.map(str::to_owned)), invoked, completed: Some(completed) }
    }

    #[test]
    fn a_read_after_a_finished_write_must_see_it_or_a_later_one() {
        let fine = [write("a", 0, Some(10)), read(Some("a"), 20, 30)];
        assert!(is_linearizable(&fine));
        let stale = [write("a", 0, Some(10)), write("b", 11, Some(15)), read(Some("a"), 20, 30)];
        assert!(!is_linearizable(&stale));
        let nothing = [write("a", 0, Some(10)), read(None, 20, 30)];
        assert!(!is_linearizable(&nothing));
    }

    #[test]
    fn overlapping_operations_may_go_either_way() {
        let history = [write("a", 0, Some(100)), read(None, 10, 20), read(Some("a"), 30, 40)];
        assert!(is_linearizable(&history));
        // Once a read saw the new value, a later read may not see the old one.
        let flicker = [write("a", 0, Some(100)), read(Some("a"), 10, 20), read(None, 30, 40)];
        assert!(!is_linearizable(&flicker));
    }

    #[test]
    fn an_unanswered_write_may_have_happened_or_not() {
        let seen = [write("a", 0, None), read(Some("a"), 50, 60)];
        assert!(is_linearizable(&seen));
        let unseen = [write("a", 0, None), read(None, 50, 60)];
        assert!(is_linearizable(&unseen));
        // …but not both: once seen, it stays.
        let both = [write("a", 0, None), read(Some("a"), 50, 60), read(None, 70, 80)];
        assert!(!is_linearizable(&both));
    }

    #[test]
    fn check_names_the_violating_key_and_minimize_keeps_what_matters() {
        let mut history = vec![
            Event { key: "other".into(), op: Op::Write("x".into()), invoked: 0, completed: Some(1) },
            write("a", 0, Some(10)),
            read(Some("a"), 11, 12),
            write("b", 13, Some(15)),
            read(Some("b"), 16, 17),
        ];
        assert!(check(&history).is_ok());
        history.push(read(Some("a"), 20, 30));
        let violation = check(&history).unwrap_err();
        assert_eq!(violation.key, "tag");
        // Without the writes, reading "a" at all is the contradiction.
        let small = minimize(&violation);
        assert_eq!(small.events, vec![read(Some("a"), 20, 30)]);
    }

    /// A history produced by a real register: each operation takes effect
    /// at a point inside its interval, in the order of those points.
    fn register_history() -> impl Strategy<Value = Vec<Event>> {
        proptest::collection::vec((0u8..3, 0u8..4, 1u64..20, 1u64..20, proptest::bool::weighted(0.1)), 1..40).prop_map(
            |steps| {
                let mut value: Option<String> = None;
                let mut events = Vec::new();
                for (point, (kind, written, before, after, lost)) in steps.into_iter().enumerate() {
                    // Linearization points 200 apart; intervals around them overlap their neighbours.
                    let at = 200 * (point as u64 + 1);
                    let (invoked, completed) = (at - before * 10, at + after * 10);
                    if kind == 0 {
                        value = Some(format!("v{written}"));
                        let completed = (!lost).then_some(completed);
                        events.push(write(value.as_deref().unwrap(), invoked, completed));
                    } else {
                        events.push(read(value.as_deref(), invoked, completed));
                    }
                }
                events
            },
        )
    }

    proptest! {
        #[test]
        fn histories_of_a_real_register_are_linearizable(history in register_history()) {
            prop_assert!(is_linearizable(&history), "{history:?}");
        }

        #[test]
        fn a_read_of_a_value_never_written_is_caught(history in register_history(), at in 0usize..40) {
            let mut broken = history.clone();
            let index = at % broken.len();
            let (invoked, completed) = (broken[index].invoked, broken[index].completed.unwrap_or(broken[index].invoked + 1));
            broken.push(read(Some("never-written"), invoked, completed));
            prop_assert!(!is_linearizable(&broken));
            let violation = check(&broken).unwrap_err();
            let small = minimize(&violation);
            prop_assert_eq!(small.events.len(), 1);
        }
    }
}
