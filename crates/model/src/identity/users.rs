//! User accounts: records and the commands that change them.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use flotilla_storage::ErrorKind;

use super::{code, groups, keys, permissions, validate_name, Grant};
use crate::rejection::{Refusal, Rejection};
use crate::store::{get_json, put_json, StateRead, StateWrite, StoreError, Tx, SCAN_PAGE};

/// A user account. The password is stored only as a slow hash (argon2id PHC
/// string), made by the proposer; its groups live in the membership tables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub name: String,
    #[serde(default)]
    pub email: String,
    /// Argon2id PHC string; empty for accounts that cannot log in with a password (`anonymous`).
    pub password_hash: String,
    pub admin: bool,
    #[serde(default = "yes")]
    pub profile_updatable: bool,
    #[serde(default)]
    pub disable_ui_access: bool,
    #[serde(default)]
    pub internal_password_disabled: bool,
    /// Refused every login until unlocked.
    #[serde(default)]
    pub locked: bool,
    /// Repository grants of 0.1.0, read as a target of this user alone on OCI
    /// repositories; new releases write permission targets instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<Grant>,
    pub created_ms: u64,
    /// Last change by a command (0 for records of 0.1.0).
    #[serde(default)]
    pub modified_ms: u64,
}

fn yes() -> bool {
    true
}

impl UserRecord {
    /// A new account with defaults: not admin, profile updatable, unlocked.
    pub fn new(name: impl Into<String>, email: impl Into<String>, password_hash: impl Into<String>) -> Self {
        UserRecord {
            name: name.into(),
            email: email.into(),
            password_hash: password_hash.into(),
            admin: false,
            profile_updatable: true,
            disable_ui_access: false,
            internal_password_disabled: false,
            locked: false,
            grants: Vec::new(),
            created_ms: 0,
            modified_ms: 0,
        }
    }
}

/// A partial change to an account: fields left `None` keep their value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_updatable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_ui_access: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_password_disabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked: Option<bool>,
    /// The user's groups, replacing the current ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<BTreeSet<String>>,
}

/// Creates an account, or replaces one when `replace`; `groups` replaces its
/// memberships (`None`: a new account joins the auto-join groups, an existing
/// one keeps its groups).
pub(super) fn save(
    tx: &mut Tx<'_>,
    user: &UserRecord,
    groups: Option<&BTreeSet<String>>,
    replace: bool,
) -> Result<(), Refusal> {
    validate_name("user", &user.name)?;
    let existing: Option<UserRecord> = get_json(tx, &keys::user(&user.name))?;
    if existing.is_some() && !replace {
        let message = format!("user {} already exists", user.name);
        return Err(Rejection::new(ErrorKind::AlreadyExists, code::USER_EXISTS, message).into());
    }
    if let Some(groups) = groups {
        groups::require_all(tx, groups)?;
    }
    let mut record = user.clone();
    record.created_ms = existing.as_ref().map_or(tx.now_ms, |existing| existing.created_ms);
    record.modified_ms = tx.now_ms;
    put_json(tx, keys::user(&record.name), &record);
    match (groups, existing) {
        (Some(groups), _) => groups::set_memberships(tx, &record.name, groups)?,
        (None, None) => {
            let auto = groups::auto_join(tx)?;
            groups::set_memberships(tx, &record.name, &auto)?;
        }
        (None, Some(_)) => {}
    }
    Ok(())
}

pub(super) fn update(tx: &mut Tx<'_>, name: &str, update: &UserUpdate) -> Result<(), Refusal> {
    let mut record = require(tx, name)?;
    if let Some(groups) = &update.groups {
        groups::require_all(tx, groups)?;
    }
    let UserUpdate {
        email,
        password_hash,
        admin,
        profile_updatable,
        disable_ui_access,
        internal_password_disabled,
        locked,
        groups,
    } = update;
    set(&mut record.email, email);
    set(&mut record.password_hash, password_hash);
    set(&mut record.admin, admin);
    set(&mut record.profile_updatable, profile_updatable);
    set(&mut record.disable_ui_access, disable_ui_access);
    set(&mut record.internal_password_disabled, internal_password_disabled);
    set(&mut record.locked, locked);
    record.modified_ms = tx.now_ms;
    put_json(tx, keys::user(name), &record);
    if let Some(groups) = groups {
        groups::set_memberships(tx, name, groups)?;
    }
    Ok(())
}

/// Removes an account with everything that names it: memberships, its
/// entries in permission targets and its credentials, so that a later
/// account of the same name inherits nothing.
pub(super) fn delete(tx: &mut Tx<'_>, name: &str) -> Result<(), Refusal> {
    require(tx, name)?;
    groups::set_memberships(tx, name, &BTreeSet::new())?;
    permissions::forget_subject(tx, keys::SUBJECT_USER, name)?;
    super::credentials::forget_user(tx, name)?;
    tx.delete(&keys::user(name));
    Ok(())
}

pub(super) fn require(store: &(impl StateRead + ?Sized), name: &str) -> Result<UserRecord, Refusal> {
    get_json(store, &keys::user(name))?.ok_or_else(|| unknown(name).into())
}

pub(super) fn unknown(name: &str) -> Rejection {
    Rejection::new(ErrorKind::NotFound, code::USER_UNKNOWN, format!("user {name} does not exist"))
}

/// Whether an account exists (for checks that do not need the record).
pub(super) fn exists(store: &(impl StateRead + ?Sized), name: &str) -> Result<bool, Refusal> {
    Ok(store.get(&keys::user(name))?.is_some())
}

fn set<T: Clone>(field: &mut T, value: &Option<T>) {
    if let Some(value) = value {
        *field = value.clone();
    }
}

/// Keys under `prefix`, all of them, page by page.
pub(super) fn keys_under(store: &(impl StateRead + ?Sized), prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut found = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = store.scan(prefix, after.as_deref(), SCAN_PAGE)?;
        let full = page.len() == SCAN_PAGE;
        after = page.last().map(|(key, _)| key.clone());
        found.extend(page.into_iter().map(|(key, _)| key));
        if !full {
            return Ok(found);
        }
    }
}
