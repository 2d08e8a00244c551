//! Groups and memberships.
//!
//! A membership is two rows, `group ‖ user` and `user ‖ group`, written and
//! deleted together, so both "members of a group" and "groups of a user"
//! are prefix scans.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use flotilla_storage::ErrorKind;

use super::users::{self, keys_under};
use super::{code, keys, permissions, validate_name};
use crate::rejection::{Refusal, Rejection};
use crate::store::{decode, get_json, put_json, tables, StateRead, StateWrite, StoreError, Tx, SCAN_PAGE};

/// A group of users; its permissions come from the targets that name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// New users join it when created without a list of groups.
    #[serde(default)]
    pub auto_join: bool,
    /// Members are administrators.
    #[serde(default)]
    pub admin_privileges: bool,
    #[serde(default)]
    pub created_ms: u64,
    #[serde(default)]
    pub modified_ms: u64,
}

impl GroupRecord {
    pub fn new(name: impl Into<String>) -> Self {
        GroupRecord {
            name: name.into(),
            description: String::new(),
            auto_join: false,
            admin_privileges: false,
            created_ms: 0,
            modified_ms: 0,
        }
    }
}

/// A partial change to a group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_join: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_privileges: Option<bool>,
    /// The members, replacing the current ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<BTreeSet<String>>,
}

/// Creates or replaces a group; `members` replaces its members when given.
pub(super) fn save(
    tx: &mut Tx<'_>,
    group: &GroupRecord,
    members: Option<&BTreeSet<String>>,
    replace: bool,
) -> Result<(), Refusal> {
    validate_name("group", &group.name)?;
    let existing: Option<GroupRecord> = get_json(tx, &keys::group(&group.name))?;
    if existing.is_some() && !replace {
        let message = format!("group {} already exists", group.name);
        return Err(Rejection::new(ErrorKind::AlreadyExists, code::GROUP_EXISTS, message).into());
    }
    if let Some(members) = members {
        require_users(tx, members)?;
    }
    let mut record = group.clone();
    record.created_ms = existing.as_ref().map_or(tx.now_ms, |existing| existing.created_ms);
    record.modified_ms = tx.now_ms;
    put_json(tx, keys::group(&record.name), &record);
    if let Some(members) = members {
        set_members(tx, &record.name, members)?;
    }
    Ok(())
}

pub(super) fn update(tx: &mut Tx<'_>, name: &str, update: &GroupUpdate) -> Result<(), Refusal> {
    let mut record = require(tx, name)?;
    if let Some(members) = &update.members {
        require_users(tx, members)?;
    }
    if let Some(description) = &update.description {
        record.description = description.clone();
    }
    if let Some(auto_join) = update.auto_join {
        record.auto_join = auto_join;
    }
    if let Some(admin) = update.admin_privileges {
        record.admin_privileges = admin;
    }
    record.modified_ms = tx.now_ms;
    put_json(tx, keys::group(name), &record);
    if let Some(members) = &update.members {
        set_members(tx, name, members)?;
    }
    Ok(())
}

/// Removes a group, its memberships and its entries in permission targets.
pub(super) fn delete(tx: &mut Tx<'_>, name: &str) -> Result<(), Refusal> {
    require(tx, name)?;
    set_members(tx, name, &BTreeSet::new())?;
    permissions::forget_subject(tx, keys::SUBJECT_GROUP, name)?;
    tx.delete(&keys::group(name));
    Ok(())
}

/// Makes `user`'s groups exactly `groups` (which must exist).
pub(super) fn set_memberships(tx: &mut Tx<'_>, user: &str, groups: &BTreeSet<String>) -> Result<(), Refusal> {
    let current = groups_of(tx, user)?;
    replace_memberships(tx, &current, groups, |group| (user, group));
    Ok(())
}

/// Makes `group`'s members exactly `members` (who must exist).
fn set_members(tx: &mut Tx<'_>, group: &str, members: &BTreeSet<String>) -> Result<(), Refusal> {
    let current = members_of(tx, group)?;
    replace_memberships(tx, &current, members, |user| (user, group));
    Ok(())
}

/// Deletes the memberships of `current` not in `wanted` and adds those of
/// `wanted` not in `current`, both rows of each; `pair` names the
/// `(user, group)` of an element.
fn replace_memberships<'a>(
    tx: &mut Tx<'_>,
    current: &'a BTreeSet<String>,
    wanted: &'a BTreeSet<String>,
    pair: impl Fn(&'a str) -> (&'a str, &'a str),
) {
    for (user, group) in current.difference(wanted).map(|name| pair(name)) {
        tx.delete(&keys::membership(user, group));
        tx.delete(&keys::member(group, user));
    }
    for (user, group) in wanted.difference(current).map(|name| pair(name)) {
        tx.put(keys::membership(user, group), Vec::new());
        tx.put(keys::member(group, user), Vec::new());
    }
}

/// The groups `user` belongs to.
pub(super) fn groups_of(store: &(impl StateRead + ?Sized), user: &str) -> Result<BTreeSet<String>, StoreError> {
    keys_under(store, &keys::memberships_of(user))?
        .iter()
        .map(|key| keys::last_part(key, tables::USER_GROUP, 1).ok_or_else(|| corrupt("membership")))
        .collect()
}

/// The members of `group`.
pub(super) fn members_of(store: &(impl StateRead + ?Sized), group: &str) -> Result<BTreeSet<String>, StoreError> {
    keys_under(store, &keys::members_of(group))?
        .iter()
        .map(|key| keys::last_part(key, tables::GROUP_MEMBER, 1).ok_or_else(|| corrupt("group member")))
        .collect()
}

/// The groups new users join by default.
pub(super) fn auto_join(store: &(impl StateRead + ?Sized)) -> Result<BTreeSet<String>, StoreError> {
    let mut found = BTreeSet::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = store.scan(&[tables::GROUP], after.as_deref(), SCAN_PAGE)?;
        let full = page.len() == SCAN_PAGE;
        after = page.last().map(|(key, _)| key.clone());
        for (_, value) in &page {
            let group: GroupRecord = decode(value)?;
            if group.auto_join {
                found.insert(group.name);
            }
        }
        if !full {
            return Ok(found);
        }
    }
}

pub(super) fn require(store: &(impl StateRead + ?Sized), name: &str) -> Result<GroupRecord, Refusal> {
    get_json(store, &keys::group(name))?.ok_or_else(|| unknown(name).into())
}

/// Refuses (as invalid input) unless every group in `groups` exists.
pub(super) fn require_all(store: &(impl StateRead + ?Sized), groups: &BTreeSet<String>) -> Result<(), Refusal> {
    for group in groups {
        if store.get(&keys::group(group))?.is_none() {
            let message = format!("group {group} does not exist");
            return Err(Rejection::new(ErrorKind::InvalidArgument, code::GROUP_UNKNOWN, message).into());
        }
    }
    Ok(())
}

fn require_users(store: &(impl StateRead + ?Sized), users: &BTreeSet<String>) -> Result<(), Refusal> {
    for user in users {
        if !users::exists(store, user)? {
            let message = format!("user {user} does not exist");
            return Err(Rejection::new(ErrorKind::InvalidArgument, code::USER_UNKNOWN, message).into());
        }
    }
    Ok(())
}

fn unknown(name: &str) -> Rejection {
    Rejection::new(ErrorKind::NotFound, code::GROUP_UNKNOWN, format!("group {name} does not exist"))
}

pub(super) fn corrupt(what: &str) -> StoreError {
    StoreError(format!("an undecodable {what} key"))
}
