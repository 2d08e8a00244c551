//! The identity domain: one account model for every surface.
//!
//! Users, groups, permission targets (Artifactory's, canonical: the other
//! surfaces' scopes and roles are targets too), credentials found by the
//! hash of their secret, and revoked token ids. Every command that changes
//! any of them bumps the identity revision, so a node can cache what it
//! compiled from them ([`PermissionSet`]) and notice a change with one read.
//!
//! Passwords are stored only as slow (argon2) PHC strings and secrets only as
//! SHA-256 hashes, both made by the proposer, never here.

mod actions;
mod credentials;
mod groups;
mod keys;
mod patterns;
mod permissions;
mod policy;
mod reader;
mod users;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use flotilla_storage::ErrorKind;

use crate::domain::Domain;
use crate::rejection::{Refusal, Rejection};
use crate::store::{decode, for_each_entry, get_json, put_json, tables, StateRead, StoreError, Tx};

pub use actions::{roles, Action, ActionSet};
pub use credentials::{
    parse_hash, secret_hash, CredentialKind, CredentialRecord, RevokedToken, MAX_CREDENTIALS_PER_USER,
};
pub use groups::{GroupRecord, GroupUpdate};
pub use patterns::{name_matches, path_matches, ANY};
pub use permissions::{PermissionSection, PermissionTarget, ResourceKind, MAX_TARGET_ENTRIES};
pub use policy::{PermissionSet, Resource};
pub use reader::{Account, Reader, MAX_USERS};
pub use users::{UserRecord, UserUpdate};

/// The account requests without credentials act as.
pub const ANONYMOUS_USER: &str = "anonymous";

/// Longest user, group or permission target name (bytes).
pub const MAX_NAME_BYTES: usize = 256;

/// Refusal codes of this domain.
pub mod code {
    pub const USER_UNKNOWN: &str = "USER_UNKNOWN";
    pub const USER_EXISTS: &str = "USER_EXISTS";
    pub const GROUP_UNKNOWN: &str = "GROUP_UNKNOWN";
    pub const GROUP_EXISTS: &str = "GROUP_EXISTS";
    pub const PERMISSION_UNKNOWN: &str = "PERMISSION_UNKNOWN";
    pub const PERMISSION_EXISTS: &str = "PERMISSION_EXISTS";
    pub const PERMISSION_INVALID: &str = "PERMISSION_INVALID";
    pub const NAME_INVALID: &str = "NAME_INVALID";
    pub const CREDENTIAL_INVALID: &str = "CREDENTIAL_INVALID";
    pub const CREDENTIAL_EXISTS: &str = "CREDENTIAL_EXISTS";
    pub const CREDENTIAL_UNKNOWN: &str = "CREDENTIAL_UNKNOWN";
    pub const CREDENTIAL_LIMIT: &str = "CREDENTIAL_LIMIT";
}

/// A change to the accounts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Creates or replaces a user, keeping its groups (0.1.0's command).
    PutUser(UserRecord),
    /// Creates a user (refused if it exists, unless `replace`); `groups`
    /// replaces its memberships (`None`: a new user joins the auto-join groups).
    SaveUser {
        user: UserRecord,
        groups: Option<BTreeSet<String>>,
        replace: bool,
    },
    /// Changes some fields of a user.
    UpdateUser {
        name: String,
        update: UserUpdate,
    },
    /// Removes a user with its memberships, grants and credentials.
    DeleteUser {
        name: String,
    },
    /// Creates a group (refused if it exists, unless `replace`); `members` replaces its members.
    SaveGroup {
        group: GroupRecord,
        members: Option<BTreeSet<String>>,
        replace: bool,
    },
    UpdateGroup {
        name: String,
        update: GroupUpdate,
    },
    /// Removes a group with its memberships and grants.
    DeleteGroup {
        name: String,
    },
    /// Creates a permission target (refused if it exists, unless `replace`).
    SavePermissionTarget {
        target: PermissionTarget,
        replace: bool,
    },
    DeletePermissionTarget {
        name: String,
    },
    /// Stores a credential under the hex SHA-256 of its secret.
    AddCredential {
        hash: String,
        credential: CredentialRecord,
    },
    RevokeCredential {
        user: String,
        kind: CredentialKind,
        id: String,
    },
    /// Refuses a signed token from now on.
    RevokeToken {
        jti: String,
        revoked: RevokedToken,
    },
}

/// Permission on the repositories matching `repository` (0.1.0): an exact
/// name, or a prefix ending in `*`. Read as a per-user target on OCI
/// repositories ([`PermissionSet::compile`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub repository: String,
    pub read: bool,
    pub write: bool,
    pub delete: bool,
}

/// The identity domain.
pub struct Identity;

impl Domain for Identity {
    const NAME: &'static str = "identity";
    type Command = Command;
    type Outcome = ();

    fn command_name(command: &Command) -> &'static str {
        match command {
            Command::PutUser(_) => "identity.put_user",
            Command::SaveUser { .. } => "identity.save_user",
            Command::UpdateUser { .. } => "identity.update_user",
            Command::DeleteUser { .. } => "identity.delete_user",
            Command::SaveGroup { .. } => "identity.save_group",
            Command::UpdateGroup { .. } => "identity.update_group",
            Command::DeleteGroup { .. } => "identity.delete_group",
            Command::SavePermissionTarget { .. } => "identity.save_permission_target",
            Command::DeletePermissionTarget { .. } => "identity.delete_permission_target",
            Command::AddCredential { .. } => "identity.add_credential",
            Command::RevokeCredential { .. } => "identity.revoke_credential",
            Command::RevokeToken { .. } => "identity.revoke_token",
        }
    }

    fn apply(tx: &mut Tx<'_>, command: &Command) -> Result<(), Refusal> {
        match command {
            Command::PutUser(user) => users::save(tx, user, None, true)?,
            Command::SaveUser { user, groups, replace } => users::save(tx, user, groups.as_ref(), *replace)?,
            Command::UpdateUser { name, update } => users::update(tx, name, update)?,
            Command::DeleteUser { name } => users::delete(tx, name)?,
            Command::SaveGroup { group, members, replace } => groups::save(tx, group, members.as_ref(), *replace)?,
            Command::UpdateGroup { name, update } => groups::update(tx, name, update)?,
            Command::DeleteGroup { name } => groups::delete(tx, name)?,
            Command::SavePermissionTarget { target, replace } => permissions::save(tx, target, *replace)?,
            Command::DeletePermissionTarget { name } => permissions::delete(tx, name)?,
            Command::AddCredential { hash, credential } => credentials::add(tx, hash, credential)?,
            Command::RevokeCredential { user, kind, id } => credentials::revoke(tx, user, *kind, id)?,
            Command::RevokeToken { jti, revoked } => credentials::revoke_token(tx, jti, revoked)?,
        }
        // Reached only when the command applied: a refusal changes nothing.
        let revision: u64 = get_json(tx, &keys::revision())?.unwrap_or(0);
        put_json(tx, keys::revision(), &(revision + 1));
        Ok(())
    }

    fn check_invariants(store: &dyn StateRead) -> Result<(), String> {
        invariants(store).map_err(|error| error.to_string())
    }
}

/// Names are non-empty, at most [`MAX_NAME_BYTES`], without control characters.
fn validate_name(what: &str, name: &str) -> Result<(), Refusal> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES || name.chars().any(char::is_control) {
        let message = format!("a {what} name is 1 to {MAX_NAME_BYTES} bytes without control characters");
        return Err(Rejection::new(ErrorKind::InvalidArgument, code::NAME_INVALID, message).into());
    }
    Ok(())
}

/// Records sit under their names; memberships exist both ways between
/// existing users and groups; the subject index says exactly which targets
/// name which existing subjects; every credential has its per-user row.
fn invariants(store: &dyn StateRead) -> Result<(), StoreError> {
    let violation = |message: String| StoreError(message);
    for_each_entry(store, &[tables::USER], |key, value| {
        let user: UserRecord = decode(value)?;
        if key != keys::user(&user.name) {
            return Err(violation(format!("user {} is stored under another name", user.name)));
        }
        Ok(())
    })?;
    for_each_entry(store, &[tables::GROUP_MEMBER], |key, _| {
        let mut reader = crate::store::codec::KeyReader::table(key, tables::GROUP_MEMBER)
            .ok_or_else(|| violation("member key".into()))?;
        let (group, user) = (reader.str().unwrap_or_default(), reader.str().unwrap_or_default());
        if store.get(&keys::membership(&user, &group))?.is_none() {
            return Err(violation(format!("{user} is a member of {group} without the reverse row")));
        }
        if store.get(&keys::user(&user))?.is_none() || store.get(&keys::group(&group))?.is_none() {
            return Err(violation(format!("membership {group} ‖ {user} names a missing user or group")));
        }
        Ok(())
    })?;
    let members = crate::store::count_entries(store, &[tables::GROUP_MEMBER])?;
    let memberships = crate::store::count_entries(store, &[tables::USER_GROUP])?;
    if members != memberships {
        return Err(violation(format!("{members} member rows but {memberships} membership rows")));
    }
    let mut indexed = 0;
    for_each_entry(store, &[tables::PERMISSION], |_, value| {
        let target: PermissionTarget = decode(value)?;
        for section in &target.sections {
            for (kind, names) in
                [(keys::SUBJECT_USER, section.users.keys()), (keys::SUBJECT_GROUP, section.groups.keys())]
            {
                for name in names {
                    if store.get(&keys::subject_target(kind, name, &target.name))?.is_none() {
                        return Err(violation(format!("target {} names {name} without an index row", target.name)));
                    }
                }
            }
        }
        let subjects: BTreeSet<(u8, &String)> = target
            .sections
            .iter()
            .flat_map(|s| {
                s.users.keys().map(|n| (keys::SUBJECT_USER, n)).chain(s.groups.keys().map(|n| (keys::SUBJECT_GROUP, n)))
            })
            .collect();
        for (kind, name) in &subjects {
            let exists = match *kind {
                keys::SUBJECT_USER => store.get(&keys::user(name))?.is_some(),
                _ => store.get(&keys::group(name))?.is_some(),
            };
            if !exists {
                return Err(violation(format!("target {} names missing subject {name}", target.name)));
            }
        }
        indexed += subjects.len();
        Ok(())
    })?;
    let index_rows = crate::store::count_entries(store, &[tables::PERMISSION_SUBJECT])?;
    if index_rows != indexed {
        return Err(violation(format!("{index_rows} subject index rows for {indexed} subjects named")));
    }
    for_each_entry(store, &[tables::CREDENTIAL], |key, value| {
        let credential: CredentialRecord = decode(value)?;
        let by_user = keys::user_credential(&credential.user, credential.kind.as_str(), &credential.id);
        let hash =
            store.get(&by_user)?.ok_or_else(|| violation(format!("credential {} has no user row", credential.id)))?;
        let hash: [u8; 32] = hash.try_into().map_err(|_| violation("a short credential hash".into()))?;
        if keys::credential(&hash) != key || store.get(&keys::user(&credential.user))?.is_none() {
            return Err(violation(format!("credential {} is misfiled or its user is missing", credential.id)));
        }
        Ok(())
    })?;
    let credentials = crate::store::count_entries(store, &[tables::CREDENTIAL])?;
    let user_rows = crate::store::count_entries(store, &[tables::USER_CREDENTIAL])?;
    if credentials != user_rows {
        return Err(violation(format!("{credentials} credentials but {user_rows} per-user rows")));
    }
    Ok(())
}
