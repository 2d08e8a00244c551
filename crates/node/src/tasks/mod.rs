//! Cluster tasks: the leader runs them, every node reclaims space.
//!
//! ```text
//!   operator / schedule ──CreateTask──► Raft ◄──UpdateTask, CollectBlobs── runner (leader only)
//!                                        │
//!                                        └─ tombstones ──► reclaimer (every node): delete local copies
//! ```
//!
//! - [`TaskRunner`] lives on every node but acts only while the node leads: it
//!   starts each scheduled task, resumes a running one a previous leader left
//!   (from the task's cursor), and creates scheduled garbage collections.
//! - [`gc`] is the garbage-collection task.
//! - [`per_node`] runs repair, scrub and optimize: every data node does its
//!   share on its own copies (`blobs::maintain`).
//! - [`reclaim`] is the per-node worker that deletes the copies of collected
//!   blobs and, rarely, stray copies nothing refers to.
//! - [`auto_repair`] starts a repair after a fault may have left copies missing.

pub mod auto_repair;
pub mod gc;
pub mod per_node;
pub mod reclaim;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use flotilla_model::tasks::{TaskKind, TaskOptions, TaskRecord, TaskState, TaskUpdate, Trigger};
use flotilla_model::{tasks, Command};
use flotilla_raft::client::now_ms;
use flotilla_raft::{MetaClient, WriteError};

use crate::blobs::peer::BlobPeers;
use crate::cluster::ClusterView;
use crate::telemetry::Metrics;

/// How often the runner looks for work.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Pause before retrying a task write while no leader answers.
pub(crate) const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// What the tasks need to know about the node's configuration.
#[derive(Debug, Clone)]
pub struct TaskSettings {
    /// How long a blob must have been unreferenced before GC takes it (`gc_grace`).
    pub gc_grace: Duration,
    /// Start a GC this long after the last one (`gc_interval`); `None` = only on demand.
    pub gc_interval: Option<Duration>,
    /// Start a scrub this long after the last one (`scrub_interval`); `None` = only on demand.
    pub scrub_interval: Option<Duration>,
}

/// Starts and resumes tasks while this node leads.
pub struct TaskRunner {
    pub meta: MetaClient,
    pub view: Arc<ClusterView>,
    pub settings: TaskSettings,
    pub metrics: Arc<Metrics>,
    pub peers: BlobPeers,
}

impl TaskRunner {
    /// Runs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut running: HashMap<String, JoinHandle<()>> = HashMap::new();
        let started = Instant::now();
        let mut interval = tokio::time::interval(POLL_INTERVAL);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = interval.tick() => {}
            }
            running.retain(|_, handle| !handle.is_finished());
            if !self.view.is_leader() {
                // Whoever leads now resumes the work; stop ours so two nodes never run one task.
                for (_, handle) in running.drain() {
                    handle.abort();
                }
                continue;
            }
            let tasks = match self.meta.local().tasks().tasks() {
                Ok(tasks) => tasks,
                Err(error) => {
                    tracing::warn!(%error, "reading tasks failed");
                    continue;
                }
            };
            for task in tasks.iter().filter(|task| !task.state.is_terminal()) {
                if !running.contains_key(&task.id) {
                    running.insert(task.id.clone(), self.spawn(task.clone()));
                }
            }
            self.schedule(&tasks, TaskKind::Gc, self.settings.gc_interval, started).await;
            self.schedule(&tasks, TaskKind::Scrub, self.settings.scrub_interval, started).await;
        }
        for (_, handle) in running {
            handle.abort();
        }
    }

    fn spawn(&self, task: TaskRecord) -> JoinHandle<()> {
        let (meta, settings, metrics) = (self.meta.clone(), self.settings.clone(), self.metrics.clone());
        let (view, peers) = (self.view.clone(), self.peers.clone());
        tokio::spawn(async move {
            let (id, kind) = (task.id.clone(), task.kind);
            tracing::info!(task = %id, kind = kind.name(), state = task.state.name(), "running task");
            let started = Instant::now();
            let outcome = match kind {
                TaskKind::Gc => gc::run(&meta, task, &settings).await,
                TaskKind::Repair | TaskKind::Scrub | TaskKind::Optimize => {
                    per_node::run(&meta, &view, &peers, task).await
                }
            };
            let state = match outcome {
                Ok(state) => state,
                Err(error) => {
                    tracing::warn!(task = %id, %error, "task failed");
                    let update = TaskUpdate { error: Some(error), ..TaskUpdate::state(&id, TaskState::Failed) };
                    let _ = meta.write(tasks::Command::UpdateTask(update)).await;
                    TaskState::Failed
                }
            };
            metrics.observe_task(kind.name(), state.name(), started.elapsed());
            tracing::info!(task = %id, state = state.name(), elapsed_ms = started.elapsed().as_millis() as u64, "task ended");
        })
    }

    /// Creates a scheduled task of `kind` once `every` has passed since the
    /// last one of the kind (or since this runner started, when there was none).
    async fn schedule(&self, tasks: &[TaskRecord], kind: TaskKind, every: Option<Duration>, started: Instant) {
        let Some(every) = every else { return };
        let of_kind = tasks.iter().filter(|task| task.kind == kind);
        if of_kind.clone().any(|task| !task.state.is_terminal()) {
            return;
        }
        let last = of_kind.map(|task| task.created_ms).max();
        let due = match last {
            Some(created_ms) => now_ms().saturating_sub(created_ms) >= every.as_millis() as u64,
            None => started.elapsed() >= every,
        };
        if !due {
            return;
        }
        if let Some(id) = create_by_cluster(&self.meta, kind).await {
            tracing::info!(task = %id, kind = kind.name(), "scheduled task created");
        }
    }
}

/// Creates a task of `kind` that the cluster started (trigger `schedule`);
/// its id, or `None` if it was refused (one of the kind is active) or no
/// leader took the write (logged; the caller tries again later).
pub(crate) async fn create_by_cluster(meta: &MetaClient, kind: TaskKind) -> Option<String> {
    let id = uuid::Uuid::new_v4().to_string();
    let task = TaskRecord::new(id.clone(), kind, Trigger::Schedule, TaskOptions::default(), now_ms());
    match meta.write(tasks::Command::CreateTask(Box::new(task))).await {
        Ok(_) => Some(id),
        Err(WriteError::Rejected(rejection)) => {
            tracing::debug!(reason = %rejection.message, kind = kind.name(), "no task created");
            None
        }
        Err(error) => {
            tracing::warn!(%error, kind = kind.name(), "creating a task failed");
            None
        }
    }
}

/// Commits a task step, retrying while no leader answers; `false` if it was
/// refused because the task ended (the only refusal a task step can meet).
pub(crate) async fn commit(meta: &MetaClient, command: impl Into<Command>) -> Result<bool, String> {
    let command = command.into();
    loop {
        match meta.write(command.clone()).await {
            Ok(_) => return Ok(true),
            Err(WriteError::Rejected(rejection)) => {
                tracing::info!(reason = %rejection.message, "task step refused; stopping");
                return Ok(false);
            }
            Err(WriteError::Unavailable(message)) => {
                tracing::debug!(%message, "task step waits for a leader");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Err(WriteError::Fatal(message)) => return Err(message),
        }
    }
}

/// A task's state as this node's replica has it (gone = cancelled and dropped).
pub(crate) fn current_state(meta: &MetaClient, id: &str) -> TaskState {
    meta.local().tasks().task(id).ok().flatten().map_or(TaskState::Cancelled, |task| task.state)
}
