//! The tasks domain: cluster tasks (GC, repair, scrub, optimize) as records
//! that commands move through their states.
//!
//! Rules `apply` enforces: at most one task of a kind is scheduled or
//! running; ended tasks never change; a running task cannot go back to
//! scheduled; only the newest [`TASKS_KEPT`] ended tasks are kept. The work
//! itself is done by the node crate.
//!
//! Other domains' batch commands count their work into a task through
//! [`counting_task`] and [`count_into`]: the shared counters kernel.

mod reader;
mod records;

use serde::{Deserialize, Serialize};

use flotilla_storage::ErrorKind;

use crate::domain::Domain;
use crate::rejection::{Refusal, Rejection};
use crate::store::{decode, for_each_entry, get_json, key, put_json, tables, StateRead, StateWrite, StoreError, Tx};

pub use reader::Reader;
pub use records::{TaskCounters, TaskKind, TaskOptions, TaskRecord, TaskState, TaskUpdate, Trigger, TASKS_KEPT};

/// Refusal codes of this domain.
pub mod code {
    pub const TASK_UNKNOWN: &str = "TASK_UNKNOWN";
    /// Another task of the kind is active, or the task already ended.
    pub const TASK_CONFLICT: &str = "TASK_CONFLICT";
    /// A batch larger than one command may carry.
    pub const BATCH_TOO_LARGE: &str = "BATCH_TOO_LARGE";
}

/// A change to the tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Records a new task; refused while another task of its kind is scheduled or running.
    CreateTask(Box<TaskRecord>),
    /// Changes a task; refused for an unknown or terminal task.
    UpdateTask(TaskUpdate),
    /// Cancels a task; refused for an unknown or terminal task.
    CancelTask { id: String },
}

/// The tasks domain.
pub struct Tasks;

impl Domain for Tasks {
    const NAME: &'static str = "tasks";
    type Command = Command;
    type Outcome = ();

    fn command_name(command: &Command) -> &'static str {
        match command {
            Command::CreateTask(_) => "tasks.create",
            Command::UpdateTask(_) => "tasks.update",
            Command::CancelTask { .. } => "tasks.cancel",
        }
    }

    fn apply(tx: &mut Tx<'_>, command: &Command) -> Result<(), Refusal> {
        match command {
            Command::CreateTask(task) => create_task(tx, task),
            Command::UpdateTask(update) => update_task(tx, update),
            Command::CancelTask { id } => {
                let mut task = active_task(tx, id)?;
                task.state = TaskState::Cancelled;
                task.ended_ms = Some(tx.now_ms);
                put_json(tx, task_key(id), &task);
                Ok(())
            }
        }
    }

    fn check_invariants(store: &dyn StateRead) -> Result<(), String> {
        let tasks = all_tasks(store).map_err(|error| error.to_string())?;
        let mut active_kinds = std::collections::BTreeSet::new();
        for task in tasks.iter().filter(|task| !task.state.is_terminal()) {
            if !active_kinds.insert(task.kind) {
                return Err(format!("two {} tasks are active", task.kind.name()));
            }
        }
        let ended = tasks.iter().filter(|task| task.state.is_terminal()).count();
        if ended > TASKS_KEPT {
            return Err(format!("{ended} ended tasks kept, more than {TASKS_KEPT}"));
        }
        Ok(())
    }
}

fn create_task(tx: &mut Tx<'_>, task: &TaskRecord) -> Result<(), Refusal> {
    let tasks = all_tasks(tx)?;
    if tasks.iter().any(|existing| existing.id == task.id) {
        return Err(conflict(format!("task {} exists", task.id)));
    }
    if let Some(active) = tasks.iter().find(|existing| existing.kind == task.kind && !existing.state.is_terminal()) {
        return Err(conflict(format!("{} task {} is {}", active.kind.name(), active.id, active.state.name())));
    }
    let mut ended: Vec<&TaskRecord> = tasks.iter().filter(|existing| existing.state.is_terminal()).collect();
    if ended.len() >= TASKS_KEPT {
        ended.sort_by_key(|existing| (existing.ended_ms, existing.created_ms));
        for old in &ended[..=ended.len() - TASKS_KEPT] {
            tx.delete(&task_key(&old.id));
        }
    }
    let mut record = task.clone();
    record.state = TaskState::Scheduled;
    put_json(tx, task_key(&record.id), &record);
    Ok(())
}

fn update_task(tx: &mut Tx<'_>, update: &TaskUpdate) -> Result<(), Refusal> {
    let mut task = active_task(tx, &update.id)?;
    if let Some(state) = update.state {
        if state == TaskState::Scheduled && task.state == TaskState::Running {
            return Err(conflict(format!("task {} is running", task.id)));
        }
        if state == TaskState::Running && task.started_ms.is_none() {
            task.started_ms = Some(tx.now_ms);
        }
        if state.is_terminal() {
            task.ended_ms = Some(tx.now_ms);
        }
        task.state = state;
    }
    if update.node.is_some() {
        task.node = update.node;
    }
    if update.error.is_some() {
        task.error = update.error.clone();
    }
    if update.cursor.is_some() {
        task.cursor = update.cursor.clone();
    }
    task.counters = task.counters.plus(update.counters);
    put_json(tx, task_key(&task.id), &task);
    Ok(())
}

fn conflict(message: String) -> Refusal {
    Rejection::new(ErrorKind::Conflict, code::TASK_CONFLICT, message).into()
}

fn all_tasks(store: &(impl StateRead + ?Sized)) -> Result<Vec<TaskRecord>, StoreError> {
    let mut tasks = Vec::new();
    for_each_entry(store, &[tables::TASK], |_, value| {
        tasks.push(decode(value)?);
        Ok(())
    })?;
    Ok(tasks)
}

/// The task `id` if it may still change.
fn active_task(store: &(impl StateRead + ?Sized), id: &str) -> Result<TaskRecord, Refusal> {
    let Some(task) = get_json::<TaskRecord>(store, &task_key(id))? else {
        let message = format!("task {id} does not exist");
        return Err(Rejection::new(ErrorKind::NotFound, code::TASK_UNKNOWN, message).into());
    };
    if task.state.is_terminal() {
        return Err(conflict(format!("task {id} is {}", task.state.name())));
    }
    Ok(task)
}

/// The checks a batch command of another domain starts with: at most `max`
/// items, and the task it counts into (if any) still active.
pub fn counting_task(
    store: &(impl StateRead + ?Sized),
    task_id: Option<&str>,
    items: usize,
    max: usize,
    what: &str,
) -> Result<Option<TaskRecord>, Refusal> {
    if items > max {
        let message = format!("at most {max} {what}, not {items}");
        return Err(Rejection::new(ErrorKind::InvalidArgument, code::BATCH_TOO_LARGE, message).into());
    }
    task_id.map(|id| active_task(store, id)).transpose()
}

/// Adds `counters` to a task found by [`counting_task`] in the same command.
pub fn count_into(tx: &mut Tx<'_>, task: Option<TaskRecord>, counters: TaskCounters) {
    if let Some(mut task) = task {
        task.counters = task.counters.plus(counters);
        put_json(tx, task_key(&task.id), &task);
    }
}

fn task_key(id: &str) -> Vec<u8> {
    key(tables::TASK, &[id.as_bytes()])
}
