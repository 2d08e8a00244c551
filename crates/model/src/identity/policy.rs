//! Permission checks: a user's targets compiled into a [`PermissionSet`].
//!
//! Compiling reads the user, their groups and the targets naming either
//! (through the subject index), and keeps, per section, the union of the
//! actions granted to the user and their groups. A check then looks only at
//! the rules of that user: the cost is O(rules that name the user), never a
//! scan of every target. Callers cache the set per (user, identity revision).

use super::actions::{Action, ActionSet};
use super::groups::GroupRecord;
use super::patterns::{name_matches, path_matches, ANY};
use super::permissions::{PermissionTarget, ResourceKind};
use super::users::UserRecord;
use super::ANONYMOUS_USER;

/// The repository-key wildcards of Artifactory permission targets.
const ANY_LOCAL: &str = "ANY LOCAL";
const ANY_REMOTE: &str = "ANY REMOTE";
const ANY_DISTRIBUTION: &str = "ANY DISTRIBUTION";

/// Something a permission is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    /// An OCI repository by its full name (`team/app`).
    OciRepository(&'a str),
    /// A path in an Artifactory repository.
    RepoPath { repo: &'a str, path: &'a str },
    /// A build by name.
    Build(&'a str),
    /// A schema registry group.
    SchemaGroup(&'a str),
    /// A project.
    Project(&'a str),
}

/// One section's resources with the actions the user holds on them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    kind: ResourceKind,
    targets: Vec<String>,
    include: Vec<String>,
    exclude: Vec<String>,
    actions: ActionSet,
}

/// What one user may do, compiled from their targets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PermissionSet {
    admin: bool,
    rules: Vec<Rule>,
}

impl PermissionSet {
    /// Compiles the rights of `user`, a member of `groups`, from `targets`
    /// (those that name the user or one of the groups; others add nothing).
    pub fn compile(user: &UserRecord, groups: &[GroupRecord], targets: &[PermissionTarget]) -> Self {
        // The account unauthenticated requests act as is never an administrator.
        let admin = user.name != ANONYMOUS_USER && (user.admin || groups.iter().any(|group| group.admin_privileges));
        let mut rules = Vec::new();
        for target in targets {
            for section in &target.sections {
                let from_groups = groups.iter().filter_map(|group| section.groups.get(&group.name));
                let actions = from_groups
                    .chain(section.users.get(&user.name))
                    .fold(ActionSet::EMPTY, |all, actions| all.union(*actions));
                if !actions.is_empty() {
                    rules.push(Rule {
                        kind: section.kind,
                        targets: section.targets.clone(),
                        include: section.include_patterns.clone(),
                        exclude: section.exclude_patterns.clone(),
                        actions,
                    });
                }
            }
        }
        // 0.1.0 grants: a target of this user alone on OCI repositories.
        for grant in &user.grants {
            let granted = [(grant.read, Action::Read), (grant.write, Action::Write), (grant.delete, Action::Delete)];
            let actions = granted.iter().filter(|(held, _)| *held).fold(ActionSet::EMPTY, |set, (_, a)| set.with(*a));
            if !actions.is_empty() {
                rules.push(Rule {
                    kind: ResourceKind::OciRepository,
                    targets: vec![grant.repository.clone()],
                    include: Vec::new(),
                    exclude: Vec::new(),
                    actions,
                });
            }
        }
        PermissionSet { admin, rules }
    }

    /// Whether the user is an administrator (by flag or by a group).
    pub fn is_admin(&self) -> bool {
        self.admin
    }

    /// Whether the user may do `action` to `resource`: an administrator may
    /// do anything; anyone else needs a rule that covers both.
    pub fn allows(&self, resource: &Resource<'_>, action: Action) -> bool {
        self.admin || self.rules.iter().any(|rule| rule.actions.allows(action) && rule.covers(resource))
    }

    /// Whether any rule grants `action` on some resource of `kind` (for
    /// listings that filter per row afterwards).
    pub fn allows_any(&self, kind: ResourceKind, action: Action) -> bool {
        self.admin || self.rules.iter().any(|rule| rule.kind == kind && rule.actions.allows(action))
    }

    /// The number of rules (a measure of check cost).
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }
}

impl Rule {
    fn covers(&self, resource: &Resource<'_>) -> bool {
        match (self.kind, resource) {
            (ResourceKind::Repo, Resource::RepoPath { repo, path }) => self.covers_repo_path(repo, path),
            (ResourceKind::Repo, Resource::OciRepository(name)) => {
                let (repo, path) = name.split_once('/').unwrap_or((name, ""));
                self.covers_repo_path(repo, path)
            }
            (ResourceKind::OciRepository, Resource::OciRepository(name))
            | (ResourceKind::SchemaGroup, Resource::SchemaGroup(name))
            | (ResourceKind::Project, Resource::Project(name)) => self.names(name),
            (ResourceKind::Build, Resource::Build(name)) => self.path_allowed(name),
            _ => false,
        }
    }

    fn names(&self, name: &str) -> bool {
        self.targets.iter().any(|pattern| name_matches(pattern, name))
    }

    fn covers_repo_path(&self, repo: &str, path: &str) -> bool {
        // Every repository is local until remote repositories exist.
        let repo_listed = self.targets.iter().any(|target| match target.as_str() {
            ANY | ANY_LOCAL => true,
            ANY_REMOTE | ANY_DISTRIBUTION => false,
            key => key == repo,
        });
        repo_listed && self.path_allowed(path)
    }

    fn path_allowed(&self, path: &str) -> bool {
        let included = self.include.iter().all(|pattern| pattern.is_empty())
            || self.include.iter().any(|pattern| !pattern.is_empty() && path_matches(pattern, path));
        let excluded = self.exclude.iter().any(|pattern| !pattern.is_empty() && path_matches(pattern, path));
        included && !excluded
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::actions::roles;
    use super::super::permissions::PermissionSection;
    use super::super::Grant;
    use super::*;

    fn section(
        kind: ResourceKind,
        targets: &[&str],
        users: &[(&str, ActionSet)],
        groups: &[(&str, ActionSet)],
    ) -> PermissionSection {
        PermissionSection {
            kind,
            targets: targets.iter().map(|t| t.to_string()).collect(),
            include_patterns: vec!["**".into()],
            exclude_patterns: Vec::new(),
            users: users.iter().map(|(n, a)| (n.to_string(), *a)).collect::<BTreeMap<_, _>>(),
            groups: groups.iter().map(|(n, a)| (n.to_string(), *a)).collect::<BTreeMap<_, _>>(),
        }
    }

    fn target(name: &str, sections: Vec<PermissionSection>) -> PermissionTarget {
        PermissionTarget { name: name.into(), sections, created_ms: 0, modified_ms: 0 }
    }

    fn read() -> ActionSet {
        ActionSet::of(&[Action::Read])
    }

    #[test]
    fn a_repo_section_covers_oci_repositories_under_its_key() {
        let user = UserRecord::new("bob", "bob@example.com", "");
        let targets = [target("docker", vec![section(ResourceKind::Repo, &["docker-local"], &[("bob", read())], &[])])];
        let set = PermissionSet::compile(&user, &[], &targets);
        assert!(set.allows(&Resource::OciRepository("docker-local/app"), Action::Read));
        assert!(set.allows(&Resource::RepoPath { repo: "docker-local", path: "app/1.0/manifest.json" }, Action::Read));
        assert!(!set.allows(&Resource::OciRepository("docker-local/app"), Action::Write));
        assert!(!set.allows(&Resource::OciRepository("other/app"), Action::Read));
    }

    #[test]
    fn include_and_exclude_patterns_limit_paths() {
        let user = UserRecord::new("bob", "", "");
        let mut repo = section(ResourceKind::Repo, &["ANY"], &[("bob", ActionSet::of(&[Action::Write]))], &[]);
        repo.include_patterns = vec!["org/**".into()];
        repo.exclude_patterns = vec!["org/secret/**".into()];
        let set = PermissionSet::compile(&user, &[], &[target("t", vec![repo])]);
        assert!(set.allows(&Resource::RepoPath { repo: "libs", path: "org/acme/a.jar" }, Action::Write));
        assert!(!set.allows(&Resource::RepoPath { repo: "libs", path: "org/secret/a.jar" }, Action::Write));
        assert!(!set.allows(&Resource::RepoPath { repo: "libs", path: "com/a.jar" }, Action::Write));
    }

    #[test]
    fn groups_add_their_actions_and_admin_privileges() {
        let user = UserRecord::new("carol", "", "");
        let mut devs = GroupRecord::new("devs");
        let targets = [target(
            "t",
            vec![section(ResourceKind::OciRepository, &["team/*"], &[], &[("devs", roles::PROJECT_DEVELOPER)])],
        )];
        let set = PermissionSet::compile(&user, std::slice::from_ref(&devs), &targets);
        assert!(set.allows(&Resource::OciRepository("team/app"), Action::Write));
        assert!(!set.allows(&Resource::OciRepository("team/app"), Action::Delete));
        assert!(
            !PermissionSet::compile(&user, &[], &targets).allows(&Resource::OciRepository("team/app"), Action::Read)
        );
        devs.admin_privileges = true;
        assert!(PermissionSet::compile(&user, &[devs], &[]).allows(&Resource::Project("any"), Action::Manage));
    }

    #[test]
    fn other_surfaces_roles_are_targets_too() {
        let user = UserRecord::new("dave", "", "");
        let targets = [target(
            "schemas",
            vec![
                section(ResourceKind::SchemaGroup, &["payments"], &[("dave", roles::SCHEMA_DEVELOPER)], &[]),
                section(ResourceKind::Project, &["web"], &[("dave", roles::PROJECT_GUEST)], &[]),
            ],
        )];
        let set = PermissionSet::compile(&user, &[], &targets);
        assert!(set.allows(&Resource::SchemaGroup("payments"), Action::Delete));
        assert!(!set.allows(&Resource::SchemaGroup("payments"), Action::Manage));
        assert!(set.allows(&Resource::Project("web"), Action::Read));
        assert!(!set.allows(&Resource::Project("web"), Action::Write));
        assert!(!set.allows(&Resource::OciRepository("payments"), Action::Read));
    }

    #[test]
    fn legacy_grants_still_apply() {
        let mut user = UserRecord::new("anonymous", "", "");
        user.grants = vec![Grant { repository: "*".into(), read: true, write: false, delete: false }];
        let set = PermissionSet::compile(&user, &[], &[]);
        assert!(set.allows(&Resource::OciRepository("any/thing"), Action::Read));
        assert!(!set.allows(&Resource::OciRepository("any/thing"), Action::Write));
    }

    #[test]
    fn builds_match_their_include_patterns() {
        let user = UserRecord::new("eve", "", "");
        let mut build = section(ResourceKind::Build, &["artifactory-build-info"], &[("eve", read())], &[]);
        build.include_patterns = vec!["release-*/**".into()];
        let set = PermissionSet::compile(&user, &[], &[target("b", vec![build])]);
        assert!(set.allows(&Resource::Build("release-1"), Action::Read));
        assert!(!set.allows(&Resource::Build("nightly"), Action::Read));
    }
}
