//! What the workload saw, recorded for the checkers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Instant;

use crate::linearizability::Event;

/// A blob the cluster acknowledged (201).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckedBlob {
    pub repo: String,
    pub digest: String,
    pub size: usize,
}

/// A manifest the cluster acknowledged (201), readable by digest for good
/// (the workload never deletes manifests, only tags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckedManifest {
    pub repo: String,
    pub digest: String,
}

/// Something a client saw that the cluster promises never happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    /// Milliseconds since the run began.
    pub at_ms: u64,
    pub node: usize,
    pub what: String,
}

/// A layout version as the watcher saw it (µs since the start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayoutSeen {
    /// When some node first reported this version.
    pub first_us: u64,
    /// When some node first reported it synced (every owner holds its share).
    pub synced_us: Option<u64>,
}

/// Everything recorded so far; shared by the workload's threads.
pub struct Recorder {
    started: Instant,
    inner: Mutex<History>,
}

/// A finished run's record.
#[derive(Debug, Default, Clone)]
pub struct History {
    /// Tag operations (registers) for the linearizability check.
    pub tag_events: Vec<Event>,
    pub acked_blobs: Vec<AckedBlob>,
    pub acked_manifests: Vec<AckedManifest>,
    pub anomalies: Vec<Anomaly>,
    /// Answers by operation and status (`0`: no answer, the connection
    /// was refused or reset; `1`: the client's timeout ran out).
    pub statuses: BTreeMap<(&'static str, u16), u64>,
    /// The first few requests per node that got no answer, and why.
    pub no_answer_examples: Vec<String>,
    /// Acknowledged tag writes: when each was sent and answered (µs since the start).
    pub write_acks: Vec<(u64, u64)>,
    /// Per Raft term, the leaders some node named for it, and which node did.
    pub leaders: BTreeMap<u64, BTreeMap<u64, BTreeSet<usize>>>,
    /// Every layout version some node reported.
    pub layouts: BTreeMap<u64, LayoutSeen>,
    /// Per node id, each change of its membership state (`active`,
    /// `draining`, `removed`) some node reported, with when.
    pub member_states: BTreeMap<u64, Vec<(u64, String)>>,
}

impl History {
    /// Operations that got an answer.
    pub fn answered(&self) -> u64 {
        self.statuses.iter().filter(|((_, status), _)| *status >= 100).map(|(_, count)| count).sum()
    }

    /// Operations sent.
    pub fn sent(&self) -> u64 {
        self.statuses.values().sum()
    }
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder { started: Instant::now(), inner: Mutex::new(History::default()) }
    }

    /// Microseconds since the recorder was made (the history's clock).
    pub fn now(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    fn with<T>(&self, f: impl FnOnce(&mut History) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    pub fn tag_event(&self, event: Event) {
        self.with(|history| history.tag_events.push(event));
    }

    pub fn status(&self, op: &'static str, status: u16) {
        self.with(|history| *history.statuses.entry((op, status)).or_default() += 1);
    }

    pub fn anomaly(&self, node: usize, what: String) {
        let at_ms = self.now() / 1000;
        self.with(|history| history.anomalies.push(Anomaly { at_ms, node, what }));
    }

    /// A request to `node` got no answer; the first few are kept.
    pub fn no_answer(&self, node: usize, why: String) {
        let at = self.now() / 1000;
        self.with(|history| {
            let prefix = format!("node {node} ");
            if history.no_answer_examples.iter().filter(|example| example.starts_with(&prefix)).count() < 3 {
                history.no_answer_examples.push(format!("{prefix}at {:.1} s: {why}", at as f64 / 1000.0));
            }
        });
    }

    pub fn acked_blob(&self, blob: AckedBlob) {
        self.with(|history| history.acked_blobs.push(blob));
    }

    pub fn acked_manifest(&self, manifest: AckedManifest) {
        self.with(|history| history.acked_manifests.push(manifest));
    }

    /// A tag write sent at `invoked` was acknowledged at `completed`.
    pub fn write_acked(&self, invoked: u64, completed: u64) {
        self.with(|history| history.write_acks.push((invoked, completed)));
    }

    /// Node `node` says `leader` leads term `term`.
    pub fn leader_seen(&self, node: usize, term: u64, leader: u64) {
        self.with(|history| {
            history.leaders.entry(term).or_default().entry(leader).or_default().insert(node);
        });
    }

    /// Some node reports layout `version`, synced or still syncing.
    pub fn layout_seen(&self, version: u64, synced: bool) {
        let now = self.now();
        self.with(|history| {
            let seen = history.layouts.entry(version).or_insert(LayoutSeen { first_us: now, synced_us: None });
            if synced && seen.synced_us.is_none() {
                seen.synced_us = Some(now);
            }
        });
    }

    /// Some node reports node `id` in membership state `state`.
    pub fn member_state_seen(&self, id: u64, state: &str) {
        let now = self.now();
        self.with(|history| {
            let states = history.member_states.entry(id).or_default();
            if states.last().is_none_or(|(_, last)| last != state) {
                states.push((now, state.to_owned()));
            }
        });
    }

    /// A random acknowledged blob, if any.
    pub fn some_acked_blob(&self, pick: usize) -> Option<AckedBlob> {
        self.with(|history| {
            let blobs = &history.acked_blobs;
            (!blobs.is_empty()).then(|| blobs[pick % blobs.len()].clone())
        })
    }

    /// A copy of everything recorded.
    pub fn snapshot(&self) -> History {
        self.with(|history| history.clone())
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}
