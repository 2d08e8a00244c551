//! Reads of the identity domain.

use std::collections::{BTreeMap, BTreeSet};

use super::credentials::{CredentialKind, CredentialRecord, RevokedToken};
use super::groups::{self, GroupRecord};
use super::keys;
use super::permissions::PermissionTarget;
use super::policy::PermissionSet;
use super::users::{keys_under, UserRecord};
use crate::store::{decode, get_json, tables, StoreError, View};

/// Most accounts (or groups, or targets) one listing returns; a larger directory needs paging.
pub const MAX_USERS: usize = 10_000;

/// A user as the authenticator needs it: the record, its groups and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub user: UserRecord,
    pub groups: BTreeSet<String>,
    pub permissions: PermissionSet,
}

/// Reads accounts.
pub struct Reader<'s> {
    store: View<'s>,
}

impl<'s> Reader<'s> {
    pub fn new(store: impl Into<View<'s>>) -> Self {
        Reader { store: store.into() }
    }

    /// A user account.
    pub fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        get_json(&*self.store, &keys::user(name))
    }

    /// Accounts in name order, at most [`MAX_USERS`].
    pub fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        self.records(tables::USER)
    }

    /// The groups `user` belongs to.
    pub fn groups_of(&self, user: &str) -> Result<BTreeSet<String>, StoreError> {
        groups::groups_of(&*self.store, user)
    }

    pub fn group(&self, name: &str) -> Result<Option<GroupRecord>, StoreError> {
        get_json(&*self.store, &keys::group(name))
    }

    /// Groups in name order, at most [`MAX_USERS`].
    pub fn groups(&self) -> Result<Vec<GroupRecord>, StoreError> {
        self.records(tables::GROUP)
    }

    /// The members of `group`.
    pub fn members_of(&self, group: &str) -> Result<BTreeSet<String>, StoreError> {
        groups::members_of(&*self.store, group)
    }

    pub fn permission_target(&self, name: &str) -> Result<Option<PermissionTarget>, StoreError> {
        get_json(&*self.store, &keys::permission(name))
    }

    /// Permission targets in name order, at most [`MAX_USERS`].
    pub fn permission_targets(&self) -> Result<Vec<PermissionTarget>, StoreError> {
        self.records(tables::PERMISSION)
    }

    /// The account `name` with its groups and compiled permissions, read on
    /// one snapshot; `None` if there is no such user.
    pub fn account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        let Some(user) = self.user(name)? else { return Ok(None) };
        let group_names = self.groups_of(name)?;
        let mut groups = Vec::with_capacity(group_names.len());
        let mut target_names = BTreeSet::new();
        target_names.extend(self.targets_of(keys::SUBJECT_USER, name)?);
        for group in &group_names {
            if let Some(record) = self.group(group)? {
                groups.push(record);
            }
            target_names.extend(self.targets_of(keys::SUBJECT_GROUP, group)?);
        }
        let mut targets = Vec::with_capacity(target_names.len());
        for target in &target_names {
            targets.extend(self.permission_target(target)?);
        }
        let permissions = PermissionSet::compile(&user, &groups, &targets);
        Ok(Some(Account { user, groups: group_names, permissions }))
    }

    /// The credential whose secret hashes to `hash`.
    pub fn credential(&self, hash: &[u8; 32]) -> Result<Option<CredentialRecord>, StoreError> {
        get_json(&*self.store, &keys::credential(hash))
    }

    /// The credentials of `kind` that `user` holds, in id order.
    pub fn credentials_of(&self, user: &str, kind: CredentialKind) -> Result<Vec<CredentialRecord>, StoreError> {
        let mut found = Vec::new();
        for by_user in keys_under(&*self.store, &keys::user_credentials_of_kind(user, kind.as_str()))? {
            let Some(hash) = self.store.get(&by_user)? else { continue };
            let hash: [u8; 32] = hash.try_into().map_err(|_| groups::corrupt("credential hash"))?;
            found.extend(self.credential(&hash)?);
        }
        Ok(found)
    }

    /// Whether the signed token `jti` was revoked.
    pub fn token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        Ok(get_json::<RevokedToken>(&*self.store, &keys::revoked_token(jti))?.is_some())
    }

    /// Revoked tokens by id.
    pub fn revoked_tokens(&self) -> Result<BTreeMap<String, RevokedToken>, StoreError> {
        let entries = self.store.scan(&[tables::REVOKED_TOKEN], None, MAX_USERS)?;
        entries
            .iter()
            .map(|(key, value)| {
                let jti =
                    keys::last_part(key, tables::REVOKED_TOKEN, 0).ok_or_else(|| groups::corrupt("revoked token"))?;
                Ok((jti, decode(value)?))
            })
            .collect()
    }

    /// The identity revision: bumped by every identity command that applied.
    pub fn revision(&self) -> Result<u64, StoreError> {
        Ok(get_json(&*self.store, &keys::revision())?.unwrap_or(0))
    }

    fn targets_of(&self, kind: u8, subject: &str) -> Result<Vec<String>, StoreError> {
        keys_under(&*self.store, &keys::targets_of(kind, subject))?
            .iter()
            .map(|key| keys::subject_target_name(key).ok_or_else(|| groups::corrupt("permission subject")))
            .collect()
    }

    fn records<T: serde::de::DeserializeOwned>(&self, table: u8) -> Result<Vec<T>, StoreError> {
        let entries = self.store.scan(&[table], None, MAX_USERS)?;
        entries.iter().map(|(_, value)| decode(value)).collect()
    }
}
