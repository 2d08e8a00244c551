//! Property tests of the system domain: nodes and layouts.

mod common;

use proptest::prelude::*;

use flotilla_model::domain::Domain;
use flotilla_model::store::StateRead;
use flotilla_model::system::{self, ClusterSettings, Layout, NodeRecord, NodeState, System};
use flotilla_model::{Command, Response};

use common::Replica;

#[derive(Debug, Clone)]
enum Op {
    PutNode { id: u64, capacity: u64 },
    SetNodeState { id: u64, state: NodeState },
    PutLayout { skew: u64, owners: u64, malformed: bool },
    MarkLayoutSynced { skew: u64 },
    PutSettings { secret: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    let state = prop_oneof![Just(NodeState::Active), Just(NodeState::Draining), Just(NodeState::Removed)];
    prop_oneof![
        (1u64..5, 0u64..3).prop_map(|(id, capacity)| Op::PutNode { id, capacity }),
        (1u64..6, state).prop_map(|(id, state)| Op::SetNodeState { id, state }),
        (0u64..3, 1u64..5, proptest::bool::weighted(0.2)).prop_map(|(skew, owners, malformed)| Op::PutLayout {
            skew,
            owners,
            malformed
        }),
        (0u64..2).prop_map(|skew| Op::MarkLayoutSynced { skew }),
        any::<u8>().prop_map(|secret| Op::PutSettings { secret }),
    ]
}

fn reader(replica: &Replica) -> system::Reader<'_> {
    system::Reader::new(&replica.state as &dyn StateRead)
}

fn command(replica: &Replica, op: &Op) -> system::Command {
    let current = reader(replica).layout().unwrap();
    match op {
        Op::PutNode { id, capacity } => system::Command::PutNode(NodeRecord {
            id: *id,
            http_addr: format!("10.0.0.{id}:5000"),
            rpc_addr: format!("10.0.0.{id}:5001"),
            gossip_addr: None,
            zone: None,
            capacity: *capacity,
            state: NodeState::Active,
            joined_ms: replica.clock,
            model_version: 1,
        }),
        Op::SetNodeState { id, state } => system::Command::SetNodeState { id: *id, state: *state },
        Op::PutLayout { skew, owners, malformed } => {
            let mut table: Vec<Vec<u64>> = (0..8u64).map(|p| (0..*owners).map(|o| 1 + (p + o) % 4).collect()).collect();
            if *malformed {
                table[3].clear();
            }
            system::Command::PutLayout(Box::new(Layout {
                version: current.as_ref().map_or(0, |layout| layout.version) + skew,
                partitions: 8,
                replication_factor: 3,
                owners: table,
                previous: current.map(|layout| layout.owners),
                created_ms: replica.clock,
            }))
        }
        Op::MarkLayoutSynced { skew } => {
            system::Command::MarkLayoutSynced { version: current.map_or(0, |layout| layout.version) + skew }
        }
        Op::PutSettings { secret } => system::Command::PutSettings(ClusterSettings {
            cluster_id: "c".into(),
            token_secret: format!("{secret:02x}"),
        }),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn layouts_advance_by_one_and_removed_nodes_stay_removed(ops in proptest::collection::vec(op(), 1..60)) {
        let mut replica = Replica::new();
        for op in &ops {
            let removed_before: Vec<u64> =
                reader(&replica).nodes().unwrap().into_iter().filter(|n| n.state == NodeState::Removed).map(|n| n.id).collect();
            let version_before = reader(&replica).layout().unwrap().map_or(0, |layout| layout.version);
            let command = command(&replica, op);
            let response = replica.run(Command::System(command.clone()), System::check_invariants);
            let version_after = reader(&replica).layout().unwrap().map_or(0, |layout| layout.version);
            prop_assert!(version_after == version_before || version_after == version_before + 1);
            if let system::Command::PutLayout(layout) = &command {
                let accepted = !matches!(response, Response::Rejected(_));
                prop_assert_eq!(accepted, layout.version == version_before + 1 && layout.is_well_formed());
            }
            for id in removed_before {
                prop_assert_eq!(reader(&replica).node(id).unwrap().map(|n| n.state), Some(NodeState::Removed));
            }
        }
        replica.assert_replay_agrees();
    }
}

fn node(id: u64, model_version: u32, state: NodeState) -> system::Command {
    system::Command::PutNode(NodeRecord {
        id,
        http_addr: String::new(),
        rpc_addr: String::new(),
        gossip_addr: None,
        zone: None,
        capacity: 1,
        state,
        joined_ms: 0,
        model_version,
    })
}

fn refusal_code(response: Response) -> Option<String> {
    match response {
        Response::Rejected(rejection) => Some(rejection.code),
        _ => None,
    }
}

/// The gate: a command of a newer model version is refused (and changes
/// nothing) until the active version reaches it, and the active version rises
/// only when every node that is not removed supports it.
#[test]
fn a_newer_command_waits_for_the_version_every_node_supports() {
    let mut replica = Replica::new();
    let run = |replica: &mut Replica, command| replica.run(Command::System(command), System::check_invariants);
    let probe = || system::Command::Probe { note: "p".into() };
    let raise = |version| system::Command::RaiseModelVersion { version };
    let next = flotilla_model::PROBE_MODEL_VERSION;
    run(&mut replica, node(1, next, NodeState::Active));
    run(&mut replica, node(2, next - 1, NodeState::Active));
    assert_eq!(refusal_code(run(&mut replica, probe())).as_deref(), Some(system::code::MODEL_VERSION_INACTIVE));
    assert_eq!(refusal_code(run(&mut replica, raise(next))).as_deref(), Some(system::code::INVALID));
    assert_eq!(run(&mut replica, raise(next - 1)), Response::Ok);
    assert_eq!(refusal_code(run(&mut replica, raise(next - 1))).as_deref(), Some(system::code::INVALID), "not newer");
    // A removed node does not hold the gate; an upgraded one lets it open.
    run(&mut replica, node(3, 0, NodeState::Active));
    run(&mut replica, system::Command::SetNodeState { id: 3, state: NodeState::Removed });
    run(&mut replica, node(2, next, NodeState::Active));
    assert_eq!(run(&mut replica, raise(next)), Response::Ok);
    assert_eq!(reader(&replica).model_version().unwrap(), next);
    assert_eq!(run(&mut replica, probe()), Response::Ok);
    replica.assert_replay_agrees();
}
