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
