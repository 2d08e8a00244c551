//! Permission targets: who may do what to which resources.
//!
//! Artifactory's permission targets are the canonical form; OCI repository
//! scopes, Apicurio role mappings and project roles are targets too (with
//! sections of their own [`ResourceKind`]). A subject index (`user|group ‖
//! name ‖ target`) finds a principal's targets without a scan of them all.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use flotilla_storage::ErrorKind;

use super::actions::ActionSet;
use super::users::keys_under;
use super::{code, groups, keys, users, validate_name};
use crate::rejection::{Refusal, Rejection};
use crate::store::{get_json, put_json, StateRead, StateWrite, Tx};

/// Most sections, patterns and subjects one target may hold (each).
pub const MAX_TARGET_ENTRIES: usize = 1024;

/// What a section's resources are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ResourceKind {
    /// Artifactory repositories (by key, or `ANY`, `ANY LOCAL`, `ANY REMOTE`),
    /// with include/exclude path patterns. An OCI repository `key/path` is
    /// the path `path` of the repository `key`.
    Repo,
    /// Build info (name patterns in the include patterns).
    Build,
    /// Release bundles: stored for Artifactory clients, not checked.
    ReleaseBundle,
    /// OCI repositories by name pattern (the 0.1.0 grants).
    OciRepository,
    /// Schema registry groups by name pattern.
    SchemaGroup,
    /// Projects by name pattern.
    Project,
}

/// One kind of resource of a target and the actions its subjects hold on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionSection {
    pub kind: ResourceKind,
    /// Repository keys, or name patterns for the other kinds.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Ant path patterns a path must match (empty: every path).
    #[serde(default)]
    pub include_patterns: Vec<String>,
    /// Ant path patterns that exclude a path.
    #[serde(default)]
    pub exclude_patterns: Vec<String>,
    #[serde(default)]
    pub users: BTreeMap<String, ActionSet>,
    #[serde(default)]
    pub groups: BTreeMap<String, ActionSet>,
}

/// A named permission target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionTarget {
    pub name: String,
    /// At most one section per kind.
    pub sections: Vec<PermissionSection>,
    #[serde(default)]
    pub created_ms: u64,
    #[serde(default)]
    pub modified_ms: u64,
}

impl PermissionTarget {
    /// The section of `kind`, if the target has one.
    pub fn section(&self, kind: ResourceKind) -> Option<&PermissionSection> {
        self.sections.iter().find(|section| section.kind == kind)
    }

    /// The users and groups this target names, as `(subject kind, name)`.
    fn subjects(&self) -> BTreeSet<(u8, String)> {
        let mut subjects = BTreeSet::new();
        for section in &self.sections {
            subjects.extend(section.users.keys().map(|user| (keys::SUBJECT_USER, user.clone())));
            subjects.extend(section.groups.keys().map(|group| (keys::SUBJECT_GROUP, group.clone())));
        }
        subjects
    }
}

/// Creates or replaces a target; every user and group it names must exist.
pub(super) fn save(tx: &mut Tx<'_>, target: &PermissionTarget, replace: bool) -> Result<(), Refusal> {
    validate_name("permission target", &target.name)?;
    validate(target)?;
    let existing: Option<PermissionTarget> = get_json(tx, &keys::permission(&target.name))?;
    if existing.is_some() && !replace {
        let message = format!("permission target {} already exists", target.name);
        return Err(Rejection::new(ErrorKind::AlreadyExists, code::PERMISSION_EXISTS, message).into());
    }
    let subjects = target.subjects();
    for (kind, name) in &subjects {
        let known = match *kind {
            keys::SUBJECT_USER => users::exists(tx, name)?,
            _ => tx.get(&keys::group(name))?.is_some(),
        };
        if !known {
            let what = if *kind == keys::SUBJECT_USER { "user" } else { "group" };
            let code = if *kind == keys::SUBJECT_USER { code::USER_UNKNOWN } else { code::GROUP_UNKNOWN };
            let message = format!("{what} {name} does not exist");
            return Err(Rejection::new(ErrorKind::InvalidArgument, code, message).into());
        }
    }
    let old_subjects = existing.as_ref().map(PermissionTarget::subjects).unwrap_or_default();
    for (kind, name) in old_subjects.difference(&subjects) {
        tx.delete(&keys::subject_target(*kind, name, &target.name));
    }
    for (kind, name) in subjects.difference(&old_subjects) {
        tx.put(keys::subject_target(*kind, name, &target.name), Vec::new());
    }
    let mut record = target.clone();
    record.created_ms = existing.as_ref().map_or(tx.now_ms, |existing| existing.created_ms);
    record.modified_ms = tx.now_ms;
    put_json(tx, keys::permission(&record.name), &record);
    Ok(())
}

pub(super) fn delete(tx: &mut Tx<'_>, name: &str) -> Result<(), Refusal> {
    let target = require(tx, name)?;
    for (kind, subject) in target.subjects() {
        tx.delete(&keys::subject_target(kind, &subject, name));
    }
    tx.delete(&keys::permission(name));
    Ok(())
}

/// Removes a deleted user or group from every target that names it.
pub(super) fn forget_subject(tx: &mut Tx<'_>, kind: u8, subject: &str) -> Result<(), Refusal> {
    for index_key in keys_under(tx, &keys::targets_of(kind, subject))? {
        let name = keys::subject_target_name(&index_key).ok_or_else(|| groups::corrupt("permission subject"))?;
        let mut target = require(tx, &name)?;
        for section in &mut target.sections {
            match kind {
                keys::SUBJECT_USER => section.users.remove(subject),
                _ => section.groups.remove(subject),
            };
        }
        target.modified_ms = tx.now_ms;
        put_json(tx, keys::permission(&name), &target);
        tx.delete(&index_key);
    }
    Ok(())
}

pub(super) fn require(store: &(impl StateRead + ?Sized), name: &str) -> Result<PermissionTarget, Refusal> {
    get_json(store, &keys::permission(name))?.ok_or_else(|| {
        let message = format!("permission target {name} does not exist");
        Rejection::new(ErrorKind::NotFound, code::PERMISSION_UNKNOWN, message).into()
    })
}

fn validate(target: &PermissionTarget) -> Result<(), Refusal> {
    let invalid = |message: String| -> Refusal {
        Rejection::new(ErrorKind::InvalidArgument, code::PERMISSION_INVALID, message).into()
    };
    let kinds: BTreeSet<ResourceKind> = target.sections.iter().map(|section| section.kind).collect();
    if kinds.len() != target.sections.len() {
        return Err(invalid(format!("permission target {} has two sections of one kind", target.name)));
    }
    for section in &target.sections {
        let sizes = [
            section.targets.len(),
            section.include_patterns.len(),
            section.exclude_patterns.len(),
            section.users.len(),
            section.groups.len(),
        ];
        if sizes.iter().any(|size| *size > MAX_TARGET_ENTRIES) {
            return Err(invalid(format!("a section holds more than {MAX_TARGET_ENTRIES} entries of one kind")));
        }
    }
    Ok(())
}
