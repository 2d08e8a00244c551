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
//! - [`reclaim`] is the per-node worker that deletes the copies of collected
//!   blobs and, rarely, stray copies nothing refers to.

pub mod gc;
pub mod reclaim;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use flotilla_raft::client::now_ms;
use flotilla_raft::task::{TaskKind, TaskOptions, TaskRecord, TaskState, TaskUpdate, Trigger};
use flotilla_raft::{Command, MetaClient, Response};

use crate::cluster::ClusterView;
use crate::telemetry::Metrics;

/// How often the runner looks for work.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// What the tasks need to know about the node's configuration.
#[derive(Debug, Clone)]
pub struct TaskSettings {
    /// How long a blob must have been unreferenced before GC takes it (`gc_grace`).
    pub gc_grace: Duration,
    /// Start a GC this long after the last one (`gc_interval`); `None` = only on demand.
    pub gc_interval: Option<Duration>,
}

/// Starts and resumes tasks while this node leads.
pub struct TaskRunner {
    pub meta: MetaClient,
    pub view: Arc<ClusterView>,
    pub settings: TaskSettings,
    pub metrics: Arc<Metrics>,
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
            let tasks = match self.meta.local().tasks() {
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
            self.schedule_gc(&tasks, started).await;
        }
        for (_, handle) in running {
            handle.abort();
        }
    }

    fn spawn(&self, task: TaskRecord) -> JoinHandle<()> {
        let (meta, settings, metrics) = (self.meta.clone(), self.settings.clone(), self.metrics.clone());
        tokio::spawn(async move {
            let (id, kind) = (task.id.clone(), task.kind);
            tracing::info!(task = %id, kind = kind.name(), state = task.state.name(), "running task");
            let started = Instant::now();
            let outcome = match kind {
                TaskKind::Gc => gc::run(&meta, task, &settings).await,
            };
            let state = match outcome {
                Ok(state) => state,
                Err(error) => {
                    tracing::warn!(task = %id, %error, "task failed");
                    let update = TaskUpdate { error: Some(error), ..TaskUpdate::state(&id, TaskState::Failed) };
                    let _ = meta.write(Command::UpdateTask(update)).await;
                    TaskState::Failed
                }
            };
            metrics.observe_task(kind.name(), state.name(), started.elapsed());
            tracing::info!(task = %id, state = state.name(), elapsed_ms = started.elapsed().as_millis() as u64, "task ended");
        })
    }

    /// Creates a scheduled GC once `gc_interval` has passed since the last GC
    /// (or since this runner started, when there was none).
    async fn schedule_gc(&self, tasks: &[TaskRecord], started: Instant) {
        let Some(every) = self.settings.gc_interval else { return };
        let gcs = tasks.iter().filter(|task| task.kind == TaskKind::Gc);
        if gcs.clone().any(|task| !task.state.is_terminal()) {
            return;
        }
        let last = gcs.map(|task| task.created_ms).max();
        let due = match last {
            Some(created_ms) => now_ms().saturating_sub(created_ms) >= every.as_millis() as u64,
            None => started.elapsed() >= every,
        };
        if !due {
            return;
        }
        let id = uuid::Uuid::new_v4().to_string();
        let task = TaskRecord::new(id.clone(), TaskKind::Gc, Trigger::Schedule, TaskOptions::default(), now_ms());
        match self.meta.write(Command::CreateTask(Box::new(task))).await {
            Ok(Response::Ok) => tracing::info!(task = %id, "scheduled garbage collection created"),
            Ok(Response::Rejected(rejection)) => tracing::debug!(reason = %rejection.message, "no scheduled gc"),
            Err(error) => tracing::warn!(%error, "creating the scheduled gc failed"),
        }
    }
}
