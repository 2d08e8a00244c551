//! Where users and the token secret come from.

use std::collections::HashMap;

use parking_lot::RwLock;

use flotilla_model::identity::UserRecord;

/// Read access to the users and the token secret of the replicated state.
pub trait UserDirectory: Send + Sync + 'static {
    /// The current record of user `name`, if any.
    fn user(&self, name: &str) -> Option<UserRecord>;
    /// The cluster-wide HMAC key for tokens; `None` before bootstrap.
    fn token_secret(&self) -> Option<Vec<u8>>;
}

/// An in-memory [`UserDirectory`], for tests and tools.
#[derive(Default)]
pub struct MemoryDirectory {
    users: RwLock<HashMap<String, UserRecord>>,
    secret: RwLock<Option<Vec<u8>>>,
}

impl MemoryDirectory {
    /// A directory with no users and the given token secret.
    pub fn new(secret: Option<Vec<u8>>) -> Self {
        MemoryDirectory { users: RwLock::default(), secret: RwLock::new(secret) }
    }

    /// Creates or replaces a user.
    pub fn put_user(&self, record: UserRecord) {
        self.users.write().insert(record.name.clone(), record);
    }

    /// Removes a user.
    pub fn remove_user(&self, name: &str) {
        self.users.write().remove(name);
    }

    /// Replaces the token secret.
    pub fn set_secret(&self, secret: Option<Vec<u8>>) {
        *self.secret.write() = secret;
    }
}

impl UserDirectory for MemoryDirectory {
    fn user(&self, name: &str) -> Option<UserRecord> {
        self.users.read().get(name).cloned()
    }

    fn token_secret(&self) -> Option<Vec<u8>> {
        self.secret.read().clone()
    }
}
