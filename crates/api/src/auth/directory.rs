//! Where accounts, credentials and the token secret come from.

use parking_lot::RwLock;

use flotilla_model::identity::{self, Account, CredentialRecord, UserRecord};
use flotilla_model::store::MemoryState;
use flotilla_model::{apply, Request, RequestId, Response, StateRead, StoreError};

/// Read access to the identity domain of the replicated state, and the token secret.
pub trait UserDirectory: Send + Sync + 'static {
    /// The identity revision: it changes whenever an account, group,
    /// permission target or credential does, so what was compiled at one
    /// revision may be reused until it moves.
    fn revision(&self) -> Result<u64, StoreError>;
    /// The account `name` with its groups and compiled permissions.
    fn account(&self, name: &str) -> Result<Option<Account>, StoreError>;
    /// The credential whose secret hashes (SHA-256) to `hash`.
    fn credential(&self, hash: &[u8; 32]) -> Result<Option<CredentialRecord>, StoreError>;
    /// Whether the signed token `jti` was revoked.
    fn token_revoked(&self, jti: &str) -> Result<bool, StoreError>;
    /// The cluster-wide HMAC key for tokens; `None` before bootstrap.
    fn token_secret(&self) -> Option<Vec<u8>>;
}

/// An in-memory [`UserDirectory`] for tests and tools: identity commands
/// applied by the model's own `apply` to a memory store, at the wall-clock
/// time unless a test says otherwise ([`MemoryDirectory::apply_at`]).
#[derive(Default)]
pub struct MemoryDirectory {
    /// The state and the last request id used.
    state: RwLock<(MemoryState, u128)>,
    secret: RwLock<Option<Vec<u8>>>,
}

impl MemoryDirectory {
    /// A directory with no users and the given token secret.
    pub fn new(secret: Option<Vec<u8>>) -> Self {
        MemoryDirectory { state: RwLock::default(), secret: RwLock::new(secret) }
    }

    /// Applies an identity command as the replicated state would; a refusal is an error.
    pub fn apply(&self, command: identity::Command) -> Result<(), flotilla_model::Rejection> {
        self.apply_at(command, flotilla_raft::clock::now_ms())
    }

    /// [`Self::apply`] as if proposed at `time_ms`.
    pub fn apply_at(&self, command: identity::Command, time_ms: u64) -> Result<(), flotilla_model::Rejection> {
        let mut state = self.state.write();
        state.1 += 1;
        let request = Request { request_id: RequestId(state.1), time_ms, command: command.into() };
        match apply(&mut state.0, &request).expect("the memory store never fails") {
            Response::Rejected(rejection) => Err(rejection),
            _ => Ok(()),
        }
    }

    /// Creates or replaces a user.
    pub fn put_user(&self, record: UserRecord) {
        self.apply(identity::Command::PutUser(record)).expect("a user record applies");
    }

    /// The record of user `name`.
    pub fn user(&self, name: &str) -> Option<UserRecord> {
        self.read(|reader| reader.user(name)).expect("the memory store never fails")
    }

    /// Removes a user, if present.
    pub fn remove_user(&self, name: &str) {
        let _ = self.apply(identity::Command::DeleteUser { name: name.into() });
    }

    /// Replaces the token secret.
    pub fn set_secret(&self, secret: Option<Vec<u8>>) {
        *self.secret.write() = secret;
    }

    fn read<T>(&self, read: impl FnOnce(&identity::Reader<'_>) -> T) -> T {
        let state = self.state.read();
        let reader = identity::Reader::new(&state.0 as &dyn StateRead);
        read(&reader)
    }
}

impl UserDirectory for MemoryDirectory {
    fn revision(&self) -> Result<u64, StoreError> {
        self.read(|reader| reader.revision())
    }

    fn account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        self.read(|reader| reader.account(name))
    }

    fn credential(&self, hash: &[u8; 32]) -> Result<Option<CredentialRecord>, StoreError> {
        self.read(|reader| reader.credential(hash))
    }

    fn token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        self.read(|reader| reader.token_revoked(jti))
    }

    fn token_secret(&self) -> Option<Vec<u8>> {
        self.secret.read().clone()
    }
}
