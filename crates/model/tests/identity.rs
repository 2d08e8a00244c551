//! Property tests of the identity domain: accounts.

mod common;

use std::collections::BTreeMap;

use proptest::prelude::*;

use flotilla_model::domain::Domain;
use flotilla_model::identity::{self, Grant, Identity, UserRecord};
use flotilla_model::store::StateRead;
use flotilla_model::{Command, Response};

use common::Replica;

const NAMES: [&str; 4] = ["alice", "bob", "a\u{0}b", "ünï"];

#[derive(Debug, Clone)]
enum Op {
    Put { user: usize, admin: bool },
    Delete { user: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..NAMES.len(), any::<bool>()).prop_map(|(user, admin)| Op::Put { user, admin }),
        (0..NAMES.len()).prop_map(|user| Op::Delete { user }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// The accounts are exactly what a map of puts and deletes says; a delete
    /// of an unknown account is refused and changes nothing.
    #[test]
    fn accounts_follow_their_commands(ops in proptest::collection::vec(op(), 1..40)) {
        let mut replica = Replica::new();
        let mut expected: BTreeMap<String, UserRecord> = BTreeMap::new();
        for op in &ops {
            let command = match op {
                Op::Put { user, admin } => {
                    let record = UserRecord {
                        name: NAMES[*user].into(),
                        password_hash: String::new(),
                        admin: *admin,
                        grants: vec![Grant { repository: "team/*".into(), read: true, write: *admin, delete: false }],
                        created_ms: replica.clock,
                    };
                    expected.insert(record.name.clone(), record.clone());
                    identity::Command::PutUser(record)
                }
                Op::Delete { user } => {
                    let known = expected.remove(NAMES[*user]).is_some();
                    let command = identity::Command::DeleteUser { name: NAMES[*user].into() };
                    let response = replica.run(Command::Identity(command), Identity::check_invariants);
                    prop_assert_eq!(matches!(response, Response::Rejected(_)), !known);
                    continue;
                }
            };
            replica.run(Command::Identity(command), Identity::check_invariants);
        }
        let reader = identity::Reader::new(&replica.state as &dyn StateRead);
        let users: Vec<UserRecord> = reader.users().unwrap();
        prop_assert_eq!(users.iter().map(|u| u.name.clone()).collect::<Vec<_>>(), expected.keys().cloned().collect::<Vec<_>>());
        for name in NAMES {
            prop_assert_eq!(reader.user(name).unwrap(), expected.get(name).cloned());
        }
        replica.assert_replay_agrees();
    }
}
