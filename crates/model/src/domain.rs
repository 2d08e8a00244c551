//! The shape every part of the replicated state has.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::rejection::Refusal;
use crate::store::{StateRead, Tx};

/// One part of the replicated state: its commands, its tables and the rules
/// `apply` enforces.
///
/// A domain writes only its own tables and the shared kernels
/// (`blobs` records and references, `tasks` counters), and reads other
/// domains only through their readers.
pub trait Domain {
    /// `"oci"`, `"tasks"`…: the prefix of command names in logs and metrics.
    const NAME: &'static str;
    type Command: Serialize + DeserializeOwned + Clone + std::fmt::Debug + PartialEq;
    /// What a command that applied tells its proposer (allocated ids, counts…).
    type Outcome: Serialize + DeserializeOwned + Clone + std::fmt::Debug + PartialEq;

    /// A short name of the command for logs and metrics.
    fn command_name(command: &Self::Command) -> &'static str;

    /// Checks preconditions before any write, so a refused command changes nothing.
    fn apply(tx: &mut Tx<'_>, command: &Self::Command) -> Result<Self::Outcome, Refusal>;

    /// Every invariant of this domain's tables; the property tests call it
    /// after each command. Returns the first violation found.
    fn check_invariants(store: &dyn StateRead) -> Result<(), String>;
}
