//! The identity domain: user accounts and their grants.
//!
//! One account serves every surface. Passwords are stored only as slow
//! (argon2) PHC strings, hashed by the proposer, never here.

mod reader;

use serde::{Deserialize, Serialize};

use flotilla_storage::ErrorKind;

use crate::domain::Domain;
use crate::rejection::{Refusal, Rejection};
use crate::store::{decode, key, put_json, tables, StateRead, StateWrite, Tx};

pub use reader::{Reader, MAX_USERS};

/// Refusal codes of this domain.
pub mod code {
    pub const USER_UNKNOWN: &str = "USER_UNKNOWN";
}

/// A change to the accounts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Creates or replaces a user.
    PutUser(UserRecord),
    /// Removes a user; refused for an unknown one.
    DeleteUser { name: String },
}

/// A user account; the password is stored only as a slow hash (PHC string).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub name: String,
    /// Argon2id PHC string; empty for accounts that cannot log in (`anonymous`).
    pub password_hash: String,
    pub admin: bool,
    pub grants: Vec<Grant>,
    pub created_ms: u64,
}

/// Permission on the repositories matching `repository`: an exact name, or a
/// prefix ending in `*` (`team/*`, or `*` for all).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub repository: String,
    pub read: bool,
    pub write: bool,
    pub delete: bool,
}

impl Grant {
    /// Whether this grant covers `repo`.
    pub fn matches(&self, repo: &str) -> bool {
        match self.repository.strip_suffix('*') {
            Some(prefix) => repo.starts_with(prefix),
            None => self.repository == repo,
        }
    }
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
            Command::DeleteUser { .. } => "identity.delete_user",
        }
    }

    fn apply(tx: &mut Tx<'_>, command: &Command) -> Result<(), Refusal> {
        match command {
            Command::PutUser(user) => put_json(tx, user_key(&user.name), user),
            Command::DeleteUser { name } => {
                let key = user_key(name);
                if tx.get(&key)?.is_none() {
                    let message = format!("user {name} does not exist");
                    return Err(Rejection::new(ErrorKind::NotFound, code::USER_UNKNOWN, message).into());
                }
                tx.delete(&key);
            }
        }
        Ok(())
    }

    fn check_invariants(store: &dyn StateRead) -> Result<(), String> {
        crate::store::for_each_entry(store, &[tables::USER], |key, value| {
            let user: UserRecord = decode(value)?;
            if key != user_key(&user.name) {
                return Err(crate::store::StoreError(format!("user {} is stored under another name", user.name)));
            }
            Ok(())
        })
        .map_err(|error| error.to_string())
    }
}

fn user_key(name: &str) -> Vec<u8> {
    key(tables::USER, &[name.as_bytes()])
}
