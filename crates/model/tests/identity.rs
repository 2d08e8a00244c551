//! Property tests of the identity domain: users, groups, memberships,
//! permission targets and credentials under random command sequences.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use flotilla_model::domain::Domain;
use flotilla_model::identity::{
    self, secret_hash, Action, ActionSet, CredentialKind, CredentialRecord, GroupRecord, GroupUpdate, Identity,
    PermissionSection, PermissionSet, PermissionTarget, Resource, ResourceKind, RevokedToken, UserRecord, UserUpdate,
};
use flotilla_model::store::StateRead;
use flotilla_model::{Command, Response};

use common::Replica;

const USERS: [&str; 4] = ["alice", "bob", "a\u{0}b", "ünï"];
const GROUPS: [&str; 3] = ["devs", "ops", "g\u{0}"];
const TARGETS: [&str; 3] = ["t1", "t2", "t\u{0}3"];
const SECRETS: [&str; 3] = ["s1", "s2", "s3"];
const REPOS: [&str; 4] = ["team/app", "docker-local/web", "other/x", "team"];

/// A section to build: kind (0 repo, 1 OCI, 2 build), repositories, users and groups with action bits.
type SectionSpec = (u8, Vec<usize>, Vec<(usize, u8)>, Vec<(usize, u8)>);

#[derive(Debug, Clone)]
enum Op {
    SaveUser { user: usize, admin: bool, groups: Option<Vec<usize>>, replace: bool },
    UpdateUser { user: usize, admin: Option<bool>, locked: Option<bool>, groups: Option<Vec<usize>> },
    DeleteUser { user: usize },
    SaveGroup { group: usize, admin: bool, auto_join: bool, members: Option<Vec<usize>> },
    UpdateGroup { group: usize, members: Option<Vec<usize>> },
    DeleteGroup { group: usize },
    SaveTarget { target: usize, sections: Vec<SectionSpec> },
    DeleteTarget { target: usize },
    AddCredential { secret: usize, user: usize, id: usize },
    RevokeCredential { user: usize, id: usize },
    RevokeToken { jti: usize },
}

fn indexes(max: usize) -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(0..max, 0..3)
}

fn holders(max: usize) -> impl Strategy<Value = Vec<(usize, u8)>> {
    proptest::collection::vec((0..max, 1u8..32), 0..3)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..USERS.len(), any::<bool>(), proptest::option::of(indexes(GROUPS.len())), any::<bool>())
            .prop_map(|(user, admin, groups, replace)| Op::SaveUser { user, admin, groups, replace }),
        (0..USERS.len(), any::<Option<bool>>(), any::<Option<bool>>(), proptest::option::of(indexes(GROUPS.len())))
            .prop_map(|(user, admin, locked, groups)| Op::UpdateUser { user, admin, locked, groups }),
        (0..USERS.len()).prop_map(|user| Op::DeleteUser { user }),
        (0..GROUPS.len(), any::<bool>(), any::<bool>(), proptest::option::of(indexes(USERS.len())))
            .prop_map(|(group, admin, auto_join, members)| Op::SaveGroup { group, admin, auto_join, members }),
        (0..GROUPS.len(), proptest::option::of(indexes(USERS.len())))
            .prop_map(|(group, members)| Op::UpdateGroup { group, members }),
        (0..GROUPS.len()).prop_map(|group| Op::DeleteGroup { group }),
        (
            0..TARGETS.len(),
            proptest::collection::vec(
                (0u8..3, indexes(REPOS.len()), holders(USERS.len()), holders(GROUPS.len())),
                0..3
            )
        )
            .prop_map(|(target, sections)| Op::SaveTarget { target, sections }),
        (0..TARGETS.len()).prop_map(|target| Op::DeleteTarget { target }),
        (0..SECRETS.len(), 0..USERS.len(), 0..3usize).prop_map(|(secret, user, id)| Op::AddCredential {
            secret,
            user,
            id
        }),
        (0..USERS.len(), 0..3usize).prop_map(|(user, id)| Op::RevokeCredential { user, id }),
        (0..3usize).prop_map(|jti| Op::RevokeToken { jti }),
    ]
}

fn names<const N: usize>(all: [&str; N], picked: &[usize]) -> BTreeSet<String> {
    picked.iter().map(|index| all[*index].to_owned()).collect()
}

fn section(kind: u8, repos: &[usize], users: &[(usize, u8)], groups: &[(usize, u8)]) -> PermissionSection {
    let kind = [ResourceKind::Repo, ResourceKind::OciRepository, ResourceKind::Build][kind as usize];
    let actions = |bits: u8| {
        ActionSet::of(
            &Action::ALL
                .into_iter()
                .take(5)
                .enumerate()
                .filter(|(i, _)| bits & (1 << i) != 0)
                .map(|(_, a)| a)
                .collect::<Vec<_>>(),
        )
    };
    PermissionSection {
        kind,
        targets: repos
            .iter()
            .map(|r| {
                if kind == ResourceKind::Repo {
                    REPOS[*r].split('/').next().unwrap().to_owned()
                } else {
                    format!("{}*", REPOS[*r])
                }
            })
            .collect(),
        include_patterns: vec!["**".into()],
        exclude_patterns: Vec::new(),
        users: users.iter().map(|(u, bits)| (USERS[*u].to_owned(), actions(*bits))).collect::<BTreeMap<_, _>>(),
        groups: groups.iter().map(|(g, bits)| (GROUPS[*g].to_owned(), actions(*bits))).collect::<BTreeMap<_, _>>(),
    }
}

fn command(op: &Op) -> identity::Command {
    match op {
        Op::SaveUser { user, admin, groups, replace } => {
            let mut record = UserRecord::new(USERS[*user], "u@example.com", "$argon2id$fake");
            record.admin = *admin;
            identity::Command::SaveUser {
                user: record,
                groups: groups.as_ref().map(|g| names(GROUPS, g)),
                replace: *replace,
            }
        }
        Op::UpdateUser { user, admin, locked, groups } => identity::Command::UpdateUser {
            name: USERS[*user].into(),
            update: UserUpdate {
                admin: *admin,
                locked: *locked,
                groups: groups.as_ref().map(|g| names(GROUPS, g)),
                ..UserUpdate::default()
            },
        },
        Op::DeleteUser { user } => identity::Command::DeleteUser { name: USERS[*user].into() },
        Op::SaveGroup { group, admin, auto_join, members } => {
            let mut record = GroupRecord::new(GROUPS[*group]);
            record.admin_privileges = *admin;
            record.auto_join = *auto_join;
            identity::Command::SaveGroup {
                group: record,
                members: members.as_ref().map(|m| names(USERS, m)),
                replace: true,
            }
        }
        Op::UpdateGroup { group, members } => identity::Command::UpdateGroup {
            name: GROUPS[*group].into(),
            update: GroupUpdate { members: members.as_ref().map(|m| names(USERS, m)), ..GroupUpdate::default() },
        },
        Op::DeleteGroup { group } => identity::Command::DeleteGroup { name: GROUPS[*group].into() },
        Op::SaveTarget { target, sections } => identity::Command::SavePermissionTarget {
            target: PermissionTarget {
                name: TARGETS[*target].into(),
                sections: sections
                    .iter()
                    .map(|(kind, repos, users, groups)| section(*kind, repos, users, groups))
                    .collect(),
                created_ms: 0,
                modified_ms: 0,
            },
            replace: true,
        },
        Op::DeleteTarget { target } => identity::Command::DeletePermissionTarget { name: TARGETS[*target].into() },
        Op::AddCredential { secret, user, id } => identity::Command::AddCredential {
            hash: hex::encode(secret_hash(SECRETS[*secret])),
            credential: CredentialRecord {
                id: format!("id{id}"),
                user: USERS[*user].into(),
                kind: CredentialKind::AppToken,
                title: "t".into(),
                created_ms: 1,
                expires_ms: None,
            },
        },
        Op::RevokeCredential { user, id } => identity::Command::RevokeCredential {
            user: USERS[*user].into(),
            kind: CredentialKind::AppToken,
            id: format!("id{id}"),
        },
        Op::RevokeToken { jti } => identity::Command::RevokeToken {
            jti: format!("jti{jti}"),
            revoked: RevokedToken { user: "alice".into(), expires_at_secs: 10 },
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Random sequences keep the domain's invariants (memberships both
    /// ways, the subject index exact, credentials filed twice); the revision
    /// moves exactly on applied commands; the compiled permissions of every
    /// account (found through the subject index) equal a compilation from
    /// every target; and a replay agrees byte for byte.
    #[test]
    fn identity_commands_keep_their_invariants(ops in proptest::collection::vec(op(), 1..48)) {
        let mut replica = Replica::new();
        let mut revision = 0;
        for op in &ops {
            let response = replica.run(Command::Identity(command(op)), Identity::check_invariants);
            if !matches!(response, Response::Rejected(_)) {
                revision += 1;
            }
            let reader = identity::Reader::new(&replica.state as &dyn StateRead);
            prop_assert_eq!(reader.revision().unwrap(), revision);
        }
        let reader = identity::Reader::new(&replica.state as &dyn StateRead);
        let every_target = reader.permission_targets().unwrap();
        for name in USERS {
            let Some(account) = reader.account(name).unwrap() else {
                prop_assert!(reader.user(name).unwrap().is_none());
                continue;
            };
            let groups: Vec<GroupRecord> = account.groups.iter().map(|g| reader.group(g).unwrap().unwrap()).collect();
            let brute = PermissionSet::compile(&account.user, &groups, &every_target);
            for repo in REPOS {
                for action in Action::ALL {
                    let resource = Resource::OciRepository(repo);
                    prop_assert_eq!(account.permissions.allows(&resource, action), brute.allows(&resource, action), "{} {} {:?}", name, repo, action);
                }
            }
            for group in &account.groups {
                prop_assert!(reader.members_of(group).unwrap().contains(name));
            }
        }
        for secret in SECRETS {
            if let Some(credential) = reader.credential(&secret_hash(secret)).unwrap() {
                prop_assert!(reader.user(&credential.user).unwrap().is_some());
                prop_assert!(reader.credentials_of(&credential.user, CredentialKind::AppToken).unwrap().contains(&credential));
            }
        }
        replica.assert_replay_agrees();
    }
}

/// A deleted user leaves nothing behind that a new account of the same name
/// could inherit: memberships, grants and credentials are gone.
#[test]
fn a_deleted_users_rights_do_not_pass_to_a_new_account_of_that_name() {
    let mut replica = Replica::new();
    let mut run = |command: identity::Command| replica.run(Command::Identity(command), Identity::check_invariants);
    run(identity::Command::SaveGroup { group: GroupRecord::new("devs"), members: None, replace: false });
    let bob = UserRecord::new("bob", "bob@example.com", "$argon2id$fake");
    run(identity::Command::SaveUser { user: bob.clone(), groups: Some(["devs".to_owned()].into()), replace: false });
    let mut target = PermissionTarget {
        name: "t".into(),
        sections: vec![section(1, &[0], &[(1, 0b111)], &[])],
        created_ms: 0,
        modified_ms: 0,
    };
    target.sections[0].users = BTreeMap::from([("bob".to_owned(), ActionSet::of(&[Action::Read, Action::Write]))]);
    assert!(matches!(run(identity::Command::SavePermissionTarget { target, replace: false }), Response::Ok));
    run(identity::Command::AddCredential {
        hash: hex::encode(secret_hash("secret")),
        credential: CredentialRecord {
            id: "1".into(),
            user: "bob".into(),
            kind: CredentialKind::AppToken,
            title: String::new(),
            created_ms: 1,
            expires_ms: None,
        },
    });
    assert!(matches!(run(identity::Command::DeleteUser { name: "bob".into() }), Response::Ok));
    run(identity::Command::SaveUser { user: bob, groups: None, replace: false });
    let reader = identity::Reader::new(&replica.state as &dyn StateRead);
    let account = reader.account("bob").unwrap().unwrap();
    assert!(account.groups.is_empty());
    assert!(!account.permissions.allows(&Resource::OciRepository("team/app"), Action::Read));
    assert!(reader.credential(&secret_hash("secret")).unwrap().is_none());
    assert!(reader.permission_target("t").unwrap().unwrap().sections[0].users.is_empty());
}

/// Refusals: duplicates without `replace`, unknown references, bad names.
#[test]
fn bad_commands_are_refused_with_their_kind() {
    use flotilla_model::ErrorKind;
    let mut replica = Replica::new();
    let mut run = |command: identity::Command| replica.run(Command::Identity(command), Identity::check_invariants);
    let kind = |response: Response| match response {
        Response::Rejected(rejection) => Some(rejection.kind),
        _ => None,
    };
    let alice = UserRecord::new("alice", "a@example.com", "h");
    assert_eq!(kind(run(identity::Command::SaveUser { user: alice.clone(), groups: None, replace: false })), None);
    assert_eq!(
        kind(run(identity::Command::SaveUser { user: alice.clone(), groups: None, replace: false })),
        Some(ErrorKind::AlreadyExists)
    );
    let groups = Some(["nope".to_owned()].into());
    assert_eq!(
        kind(run(identity::Command::SaveUser { user: alice, groups, replace: true })),
        Some(ErrorKind::InvalidArgument)
    );
    assert_eq!(
        kind(run(identity::Command::SaveUser { user: UserRecord::new("", "", ""), groups: None, replace: true })),
        Some(ErrorKind::InvalidArgument)
    );
    assert_eq!(kind(run(identity::Command::DeleteGroup { name: "nope".into() })), Some(ErrorKind::NotFound));
    let target = PermissionTarget {
        name: "t".into(),
        sections: vec![section(0, &[0], &[(1, 1)], &[])],
        created_ms: 0,
        modified_ms: 0,
    };
    assert_eq!(
        kind(run(identity::Command::SavePermissionTarget { target, replace: true })),
        Some(ErrorKind::InvalidArgument),
        "bob does not exist"
    );
    let twice = PermissionTarget {
        name: "t".into(),
        sections: vec![section(0, &[], &[], &[]), section(0, &[], &[], &[])],
        created_ms: 0,
        modified_ms: 0,
    };
    assert_eq!(
        kind(run(identity::Command::SavePermissionTarget { target: twice, replace: true })),
        Some(ErrorKind::InvalidArgument)
    );
    let credential = CredentialRecord {
        id: "1".into(),
        user: "alice".into(),
        kind: CredentialKind::AppToken,
        title: String::new(),
        created_ms: 1,
        expires_ms: None,
    };
    assert_eq!(
        kind(run(identity::Command::AddCredential { hash: "not hex".into(), credential: credential.clone() })),
        Some(ErrorKind::InvalidArgument)
    );
    let hash = hex::encode(secret_hash("x"));
    assert_eq!(
        kind(run(identity::Command::AddCredential { hash: hash.clone(), credential: credential.clone() })),
        None
    );
    assert_eq!(kind(run(identity::Command::AddCredential { hash, credential })), Some(ErrorKind::AlreadyExists));
    assert_eq!(
        kind(run(identity::Command::RevokeCredential {
            user: "alice".into(),
            kind: CredentialKind::AppToken,
            id: "2".into()
        })),
        Some(ErrorKind::NotFound)
    );
}
