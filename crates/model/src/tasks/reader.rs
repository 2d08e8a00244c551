//! Reads of the tasks domain.

use super::{all_tasks, task_key, TaskRecord};
use crate::store::{get_json, StoreError, View};

/// Reads task records.
pub struct Reader<'s> {
    store: View<'s>,
}

impl<'s> Reader<'s> {
    pub fn new(store: impl Into<View<'s>>) -> Self {
        Reader { store: store.into() }
    }

    /// A task by id.
    pub fn task(&self, id: &str) -> Result<Option<TaskRecord>, StoreError> {
        get_json(&*self.store, &task_key(id))
    }

    /// Every task kept (at most one active per kind plus `TASKS_KEPT` ended), newest first.
    pub fn tasks(&self) -> Result<Vec<TaskRecord>, StoreError> {
        let mut tasks = all_tasks(&*self.store)?;
        tasks.sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then_with(|| a.id.cmp(&b.id)));
        Ok(tasks)
    }
}
