//! Cluster tasks as the replicated state records them.
//!
//! A task is created by an operator (or a schedule), picked up by the leader,
//! and moved through its states by commands, so that a new leader sees where
//! the old one stopped and resumes the work:
//!
//! ```text
//!   scheduled ──► running ──► finished
//!       │            ├──────► failed
//!       └────────────┴──────► cancelled      (terminal states never change)
//! ```

use serde::{Deserialize, Serialize};

use crate::system::NodeId;

/// Finished, failed and cancelled tasks kept for the operator to look at; older ones are dropped.
pub const TASKS_KEPT: usize = 100;

/// What a task does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Garbage collection: blobs no manifest references, after the grace period.
    Gc,
    /// Every owner copies the recorded blobs of its partitions that it lacks.
    Repair,
    /// Every node re-hashes its copies; a corrupt one is quarantined and replaced.
    Scrub,
    /// Optimize storage: wait for the layout to be synced, then drop the
    /// copies no owner list names any more (after checking the owners hold them).
    Optimize,
}

impl TaskKind {
    /// The name used in APIs and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            TaskKind::Gc => "gc",
            TaskKind::Repair => "repair",
            TaskKind::Scrub => "scrub",
            TaskKind::Optimize => "optimize",
        }
    }

    /// Parses [`TaskKind::name`].
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "gc" => Some(TaskKind::Gc),
            "repair" => Some(TaskKind::Repair),
            "scrub" => Some(TaskKind::Scrub),
            "optimize" => Some(TaskKind::Optimize),
            _ => None,
        }
    }
}

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    Scheduled,
    Running,
    Finished,
    Failed,
    Cancelled,
}

impl TaskState {
    /// Finished, failed or cancelled: the record no longer changes.
    pub fn is_terminal(self) -> bool {
        matches!(self, TaskState::Finished | TaskState::Failed | TaskState::Cancelled)
    }

    pub fn name(self) -> &'static str {
        match self {
            TaskState::Scheduled => "scheduled",
            TaskState::Running => "running",
            TaskState::Finished => "finished",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
        }
    }
}

/// Who asked for a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Operator,
    Schedule,
}

/// How a task should run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskOptions {
    /// Report what would be done and change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// GC: how long a blob must have been unreferenced (ms); the node's `gc_grace` when absent.
    #[serde(default)]
    pub grace_ms: Option<u64>,
    /// GC: first delete untagged manifests (none listed by another manifest, no
    /// live subject) stored before the grace period, then collect blobs.
    #[serde(default)]
    pub untagged: bool,
}

/// What a task has done so far:
///
/// | kind | `scanned` | `blobs`, `bytes` | `failed` |
/// |---|---|---|---|
/// | gc | unreferenced blobs past the grace looked at | collected (dry run: collectable) | — |
///
/// and `manifests`, for GC with the untagged policy: untagged manifests deleted.
/// | repair | copies an owner should hold | copied to owners lacking them | copies no replica could supply |
/// | scrub | copies re-hashed | corrupt copies replaced | corrupt copies left in quarantine |
/// | optimize | copies looked at | copies dropped (no owner names the node) | copies kept: an owner lacked one |
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCounters {
    pub scanned: u64,
    pub blobs: u64,
    pub bytes: u64,
    #[serde(default)]
    pub failed: u64,
    #[serde(default)]
    pub manifests: u64,
}

impl TaskCounters {
    /// Field-wise sum.
    pub fn plus(self, other: TaskCounters) -> TaskCounters {
        TaskCounters {
            scanned: self.scanned + other.scanned,
            blobs: self.blobs + other.blobs,
            bytes: self.bytes + other.bytes,
            failed: self.failed + other.failed,
            manifests: self.manifests + other.manifests,
        }
    }
}

/// A task as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// A UUID chosen by whoever created the task.
    pub id: String,
    pub kind: TaskKind,
    pub state: TaskState,
    pub trigger: Trigger,
    pub options: TaskOptions,
    pub counters: TaskCounters,
    /// The node doing the work (the leader that last picked the task up).
    pub node: Option<NodeId>,
    pub created_ms: u64,
    pub started_ms: Option<u64>,
    pub ended_ms: Option<u64>,
    /// Why the task failed.
    pub error: Option<String>,
    /// Where the work got to (for GC the last blob digest looked at), so a new
    /// leader resumes there instead of starting over.
    #[serde(default)]
    pub cursor: Option<String>,
}

impl TaskRecord {
    /// A new scheduled task.
    pub fn new(id: String, kind: TaskKind, trigger: Trigger, options: TaskOptions, now_ms: u64) -> Self {
        TaskRecord {
            id,
            kind,
            state: TaskState::Scheduled,
            trigger,
            options,
            counters: TaskCounters::default(),
            node: None,
            created_ms: now_ms,
            started_ms: None,
            ended_ms: None,
            error: None,
            cursor: None,
        }
    }
}

/// A change to a task that is not yet terminal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskUpdate {
    pub id: String,
    /// The new state; `running` records the start time, a terminal state the end time.
    pub state: Option<TaskState>,
    /// The node now doing the work.
    pub node: Option<NodeId>,
    /// Added to the task's counters.
    pub counters: TaskCounters,
    pub error: Option<String>,
    /// The new cursor, when the work moved on.
    #[serde(default)]
    pub cursor: Option<String>,
}

impl TaskUpdate {
    /// Progress: `counters` added, the cursor moved to `cursor` (when given), the state kept.
    pub fn progress(id: &str, counters: TaskCounters, cursor: Option<String>) -> Self {
        TaskUpdate { id: id.to_owned(), state: None, node: None, counters, error: None, cursor }
    }

    /// An update that only changes the state.
    pub fn state(id: &str, state: TaskState) -> Self {
        TaskUpdate {
            id: id.to_owned(),
            state: Some(state),
            node: None,
            counters: TaskCounters::default(),
            error: None,
            cursor: None,
        }
    }
}
