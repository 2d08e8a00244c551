//! What a permission check costs: `cargo run --release -p flotilla-model --example permission_check`.
//!
//! A user in 3 groups, 500 permission targets of which 30 name the user or one
//! of the groups (a large directory). Prints the time to compile the account
//! from the state (once per identity revision on a node) and the time of one
//! check of the compiled set (every authorized request). A benchmark, not a
//! test: nothing here fails on a slow number.

use std::collections::{BTreeMap, BTreeSet};
use std::hint::black_box;
use std::time::Instant;

use flotilla_model::identity::{
    self, Action, ActionSet, GroupRecord, PermissionSection, PermissionTarget, Resource, ResourceKind, UserRecord,
};
use flotilla_model::store::{MemoryState, StateRead};
use flotilla_model::{apply, Command, Request, RequestId};

const TARGETS: usize = 500;
const NAMING_THE_USER: usize = 30;
const CHECKS: usize = 1_000_000;

fn main() {
    let mut state = MemoryState::default();
    let mut next = 0u128;
    let mut run = |state: &mut MemoryState, command: identity::Command| {
        next += 1;
        let request = Request { request_id: RequestId(next), time_ms: 1_000, command: Command::Identity(command) };
        apply(state, &request).expect("memory store");
    };
    for group in ["devs", "ops", "qa"] {
        run(&mut state, identity::Command::SaveGroup { group: GroupRecord::new(group), members: None, replace: true });
    }
    run(
        &mut state,
        identity::Command::SaveUser {
            user: UserRecord::new("carol", "carol@example.com", "hash"),
            groups: Some(BTreeSet::from(["devs".to_owned(), "ops".to_owned(), "qa".to_owned()])),
            replace: false,
        },
    );
    run(
        &mut state,
        identity::Command::SaveUser {
            user: UserRecord::new("someone", "someone@example.com", "hash"),
            groups: None,
            replace: false,
        },
    );
    for index in 0..TARGETS {
        let (users, groups) = match index % (TARGETS / NAMING_THE_USER) {
            0 => (BTreeMap::new(), BTreeMap::from([(["devs", "ops", "qa"][index % 3].to_owned(), read())])),
            _ => (BTreeMap::from([("someone".to_owned(), read())]), BTreeMap::new()),
        };
        let section = PermissionSection {
            kind: ResourceKind::Repo,
            targets: vec![format!("repo{index}")],
            include_patterns: vec!["**".into()],
            exclude_patterns: vec!["secret/**".into()],
            users,
            groups,
        };
        let target =
            PermissionTarget { name: format!("t{index}"), sections: vec![section], created_ms: 0, modified_ms: 0 };
        run(&mut state, identity::Command::SavePermissionTarget { target, replace: true });
    }

    let reader = identity::Reader::new(&state as &dyn StateRead);
    let started = Instant::now();
    let compilations = 1_000;
    for _ in 0..compilations {
        black_box(reader.account(black_box("carol")).expect("read"));
    }
    let compile = started.elapsed() / compilations;
    let account = reader.account("carol").expect("read").expect("carol");

    let names: Vec<String> = (0..64).map(|i| format!("repo{}/app/{i}", i * 7 % TARGETS)).collect();
    let started = Instant::now();
    let mut allowed = 0usize;
    for check in 0..CHECKS {
        let resource = Resource::OciRepository(&names[check % names.len()]);
        allowed += usize::from(account.permissions.allows(black_box(&resource), Action::Read));
    }
    let per_check = started.elapsed().as_nanos() as f64 / CHECKS as f64;
    println!(
        "targets {TARGETS}, naming the user or its groups {NAMING_THE_USER}, compiled rules {}",
        account.permissions.rule_count()
    );
    println!("compile an account (once per identity revision): {compile:?}");
    println!("one check of the compiled set: {per_check:.0} ns ({allowed} of {CHECKS} allowed)");
}

fn read() -> ActionSet {
    ActionSet::of(&[Action::Read])
}
