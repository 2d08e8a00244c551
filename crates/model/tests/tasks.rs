//! Property tests of the tasks domain: one active task per kind, ended tasks
//! never change, at most `TASKS_KEPT` ended tasks are kept.

mod common;

use proptest::prelude::*;

use flotilla_model::domain::Domain;
use flotilla_model::store::StateRead;
use flotilla_model::tasks::{
    self, TaskCounters, TaskKind, TaskOptions, TaskRecord, TaskState, TaskUpdate, Tasks, Trigger,
};
use flotilla_model::Command;

use common::Replica;

#[derive(Debug, Clone)]
enum Op {
    Create { id: u8, kind: TaskKind },
    Update { id: u8, state: Option<TaskState> },
    Cancel { id: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    let kind = prop_oneof![Just(TaskKind::Gc), Just(TaskKind::Repair), Just(TaskKind::Scrub), Just(TaskKind::Optimize)];
    let state = proptest::option::of(prop_oneof![
        Just(TaskState::Scheduled),
        Just(TaskState::Running),
        Just(TaskState::Finished),
        Just(TaskState::Failed),
        Just(TaskState::Cancelled)
    ]);
    prop_oneof![
        (0u8..120, kind).prop_map(|(id, kind)| Op::Create { id, kind }),
        (0u8..120, state).prop_map(|(id, state)| Op::Update { id, state }),
        (0u8..120).prop_map(|id| Op::Cancel { id }),
    ]
}

fn all(replica: &Replica) -> Vec<TaskRecord> {
    tasks::Reader::new(&replica.state as &dyn StateRead).tasks().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn ended_tasks_never_change(ops in proptest::collection::vec(op(), 1..300)) {
        let mut replica = Replica::new();
        for op in &ops {
            let ended_before: Vec<TaskRecord> = all(&replica).into_iter().filter(|t| t.state.is_terminal()).collect();
            let command = match op {
                Op::Create { id, kind } => tasks::Command::CreateTask(Box::new(TaskRecord::new(
                    format!("t{id}"), *kind, Trigger::Operator, TaskOptions::default(), replica.clock,
                ))),
                Op::Update { id, state } => tasks::Command::UpdateTask(TaskUpdate {
                    id: format!("t{id}"),
                    state: *state,
                    node: Some(1),
                    counters: TaskCounters { scanned: 1, ..TaskCounters::default() },
                    error: None,
                    cursor: None,
                }),
                Op::Cancel { id } => tasks::Command::CancelTask { id: format!("t{id}") },
            };
            replica.run(Command::Tasks(command), Tasks::check_invariants);
            let after = all(&replica);
            for task in ended_before {
                // Dropped to keep the list short, or unchanged.
                if let Some(now) = after.iter().find(|t| t.id == task.id) {
                    prop_assert_eq!(now, &task);
                }
            }
        }
        replica.assert_replay_agrees();
    }
}
