//! Reads of the identity domain.

use super::{user_key, UserRecord};
use crate::store::{decode, get_json, tables, StoreError, View};

/// Most accounts one listing returns; a larger directory needs paging.
pub const MAX_USERS: usize = 10_000;

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
        get_json(&*self.store, &user_key(name))
    }

    /// Accounts in name order, at most [`MAX_USERS`].
    pub fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let entries = self.store.scan(&[tables::USER], None, MAX_USERS)?;
        entries.iter().map(|(_, value)| decode(value)).collect()
    }
}
