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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

/// What a client did to one key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Op {
    /// Wrote this value (`None`: deleted the key).
    Write(Option<String>),
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

/// Shrinks a violation: drops chunks of events, then single events, while
/// the rest still violates (delta debugging), so what is printed is a short
/// history. Stops improving after `MINIMIZE_BUDGET`.
pub fn minimize(violation: &Violation) -> Violation {
    let deadline = Instant::now() + MINIMIZE_BUDGET;
    let mut events = violation.events.clone();
    let mut chunk = events.len().div_ceil(2).max(1);
    loop {
        let mut start = 0;
        while start < events.len() && Instant::now() < deadline {
            let end = (start + chunk).min(events.len());
            let fewer: Vec<Event> = events[..start].iter().chain(&events[end..]).cloned().collect();
            if is_linearizable(&fewer) {
                start = end;
            } else {
                events = fewer;
            }
        }
        if chunk == 1 || Instant::now() >= deadline {
            break;
        }
        chunk = chunk.div_ceil(2);
    }
    Violation { key: violation.key.clone(), events }
}

/// How long [`minimize`] keeps shrinking.
const MINIMIZE_BUDGET: Duration = Duration::from_secs(30);

/// The search recurses once per operation placed: a key's history of a few
/// thousand operations needs more than a default thread's stack.
const SEARCH_STACK: usize = 512 << 20;

/// One key's events: could one register have produced them?
pub fn is_linearizable(events: &[Event]) -> bool {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .stack_size(SEARCH_STACK)
            .spawn_scoped(scope, || search(events))
            .expect("spawning the search thread")
            .join()
            .expect("the search panicked")
    })
}

fn search(events: &[Event]) -> bool {
    // Values some completed read saw. A write that never got an answer and
    // whose value nobody saw may as well not have happened (each write
    // writes a value of its own), so it is left out: the search then never
    // branches on where to put it.
    let observed: HashSet<Option<&str>> = events
        .iter()
        .filter(|event| event.completed.is_some())
        .filter_map(|event| match &event.op {
            Op::Read(seen) => Some(seen.as_deref()),
            Op::Write(_) => None,
        })
        .collect();
    let mut ops: Vec<&Event> = events
        .iter()
        .filter(|event| match (&event.op, event.completed) {
            (_, Some(_)) => true,
            // Unanswered reads say nothing.
            (Op::Read(_), None) => false,
            (Op::Write(written), None) => observed.contains(&written.as_deref()),
        })
        .collect();
    ops.sort_by_key(|event| event.invoked);
    let mut values: HashMap<Option<&str>, u32> = HashMap::from([(None, 0)]);
    let compiled: Vec<Compiled> = ops
        .iter()
        .map(|event| {
            let (write, value) = match &event.op {
                Op::Write(written) => (true, written.as_deref()),
                Op::Read(seen) => (false, seen.as_deref()),
            };
            let next = values.len() as u32;
            let value = *values.entry(value).or_insert(next);
            Compiled { invoked: event.invoked, completed: event.completed, write, value }
        })
        .collect();
    let required = compiled.iter().filter(|op| op.completed.is_some()).count();
    let mut search = Search { ops: &compiled, seen: HashSet::new() };
    let mut done = vec![0u64; compiled.len().div_ceil(64)];
    search.explore(&mut done, 0, 0, required)
}

/// An operation with its value as a small number (0: absent).
struct Compiled {
    invoked: u64,
    completed: Option<u64>,
    write: bool,
    value: u32,
}

struct Search<'a> {
    /// Sorted by the time they were sent.
    ops: &'a [Compiled],
    /// Configurations (operations done, register value) already explored
    /// and found to lead nowhere.
    seen: HashSet<(Vec<u64>, u32)>,
}

fn is_done(done: &[u64], index: usize) -> bool {
    done[index / 64] & (1 << (index % 64)) != 0
}

fn flip(done: &mut [u64], index: usize) {
    done[index / 64] ^= 1 << (index % 64);
}

impl Search<'_> {
    /// Whether the operations not yet `done` can follow, from register
    /// `value`, with `left` completed ones still to place; every operation
    /// before `first` is done.
    fn explore(&mut self, done: &mut Vec<u64>, first: usize, value: u32, left: usize) -> bool {
        if left == 0 {
            return true;
        }
        if self.seen.contains(&(done.clone(), value)) {
            return false;
        }
        // The next operation must have been sent before every remaining
        // operation's answer came (else that one must go first). In order of
        // sending, an operation sent after the earliest answer so far cannot
        // lower it, so the scan stops there.
        let mut horizon = u64::MAX;
        let mut candidates = Vec::new();
        for index in first..self.ops.len() {
            let op = &self.ops[index];
            if op.invoked > horizon {
                break;
            }
            if is_done(done, index) {
                continue;
            }
            if let Some(completed) = op.completed {
                horizon = horizon.min(completed);
            }
            candidates.push(index);
        }
        // Unanswered writes of one value are interchangeable (none has a
        // deadline), and the earliest sent is the most flexible: only it is tried.
        let mut unanswered_tried: Vec<u32> = Vec::new();
        for index in candidates {
            let op = &self.ops[index];
            if op.invoked > horizon || (!op.write && op.value != value) {
                continue;
            }
            if op.completed.is_none() {
                if unanswered_tried.contains(&op.value) {
                    continue;
                }
                unanswered_tried.push(op.value);
            }
            let next = if op.write { op.value } else { value };
            flip(done, index);
            let mut first_open = first;
            while first_open < self.ops.len() && is_done(done, first_open) {
                first_open += 1;
            }
            let placed = usize::from(op.completed.is_some());
            if self.explore(done, first_open, next, left - placed) {
                return true;
            }
            flip(done, index);
        }
        self.seen.insert((done.clone(), value));
        false
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn write(value: &str, invoked: u64, completed: Option<u64>) -> Event {
        Event { key: "tag".into(), op: Op::Write(Some(value.into())), invoked, completed }
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
            Event { key: "other".into(), op: Op::Write(Some("x".into())), invoked: 0, completed: Some(1) },
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
                    } else if kind == 1 && written == 0 {
                        // A tag delete: a write of "absent".
                        value = None;
                        let completed = (!lost).then_some(completed);
                        events.push(Event { key: "tag".into(), op: Op::Write(None), invoked, completed });
                    } else {
                        events.push(read(value.as_deref(), invoked, completed));
                    }
                }
                events
            },
        )
    }

    /// Six clients, each with one operation in flight at a time, on one
    /// register, for 4000 operations: the size of a busy key in a chaos run.
    fn busy_history(seed: u64) -> Vec<Event> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut free_at = [0u64; 6];
        // (linearization point, client, invoked, completed, is write, lost)
        let mut planned = Vec::new();
        for op in 0..4000 {
            let client = op % 6;
            let invoked = free_at[client] + rng.gen_range(0..50);
            let completed = invoked + rng.gen_range(1..400);
            free_at[client] = completed;
            planned.push((
                rng.gen_range(invoked..=completed),
                invoked,
                completed,
                rng.gen_bool(0.4),
                rng.gen_bool(0.1),
            ));
        }
        planned.sort();
        let mut value: Option<String> = None;
        let mut events = Vec::new();
        for (number, (_, invoked, completed, is_write, lost)) in planned.into_iter().enumerate() {
            if is_write {
                value = Some(format!("v{number}"));
                events.push(write(value.as_deref().unwrap(), invoked, (!lost).then_some(completed)));
            } else {
                events.push(read(value.as_deref(), invoked, completed));
            }
        }
        events
    }

    #[test]
    fn a_busy_key_of_thousands_of_operations_is_checked_and_a_stale_read_in_it_found() {
        let history = busy_history(1);
        assert!(is_linearizable(&history));
        // A read, long after everything, of the first value written.
        let first = history.iter().find_map(|event| match &event.op {
            Op::Write(Some(value)) if event.completed.is_some() => Some(value.clone()),
            _ => None,
        });
        let end = history.iter().filter_map(|event| event.completed).max().unwrap();
        let mut stale = history.clone();
        stale.push(read(first.as_deref(), end + 10, end + 20));
        assert!(!is_linearizable(&stale));
    }

    #[test]
    fn many_unanswered_deletes_do_not_blow_up_the_search() {
        let mut history = busy_history(2);
        let end = history.iter().filter_map(|event| event.completed).max().unwrap();
        for n in 0..60 {
            history.push(Event { key: "tag".into(), op: Op::Write(None), invoked: n * 97, completed: None });
        }
        assert!(is_linearizable(&history));
        // One of them may explain a final read of nothing, the real history's
        // last value not being seen after that.
        history.push(read(None, end + 10, end + 20));
        assert!(is_linearizable(&history));
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
