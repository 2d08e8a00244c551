//! The envelope of every replicated write: a [`Request`] carries one domain's
//! command with the id and time the proposer chose; applying it gives a
//! [`Response`].
//!
//! `apply` never reads a clock or generates an id, so every replica computes
//! the same state from the same log.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::rejection::Rejection;
use crate::{blobs, identity, oci, system, tasks};

/// Identifies one client-visible write; a repeated id is applied once and the
/// first response is returned again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RequestId(pub u128);

impl RequestId {
    /// A fresh random id (the proposer's, never apply's).
    pub fn random() -> Self {
        RequestId(uuid::Uuid::new_v4().as_u128())
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", uuid::Uuid::from_u128(self.0))
    }
}

/// One replicated write: what to do, and the id and time the proposer assigned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub request_id: RequestId,
    /// Milliseconds since the Unix epoch, read once by the proposer.
    pub time_ms: u64,
    pub command: Command,
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.request_id, self.command.name())
    }
}

/// A write to the replicated state: one command of one domain.
///
/// Encoded as `{"<Domain>": {"<Command>": …}}`; entries written before the
/// commands were grouped by domain (`{"<Command>": …}`) still decode
/// (`crate::legacy`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Command {
    System(system::Command),
    Identity(identity::Command),
    Blobs(blobs::Command),
    Tasks(tasks::Command),
    Oci(oci::Command),
}

impl Command {
    /// `domain.command`, for logs and metrics.
    pub fn name(&self) -> &'static str {
        use crate::domain::Domain;
        match self {
            Command::System(command) => system::System::command_name(command),
            Command::Identity(command) => identity::Identity::command_name(command),
            Command::Blobs(command) => blobs::Blobs::command_name(command),
            Command::Tasks(command) => tasks::Tasks::command_name(command),
            Command::Oci(command) => oci::Oci::command_name(command),
        }
    }
}

impl Command {
    /// The model version the cluster must run before this command may apply:
    /// 0 for every command a node of 0.1.0 knew; a newer domain's commands
    /// name the version that introduced them.
    pub fn model_version(&self) -> u32 {
        match self {
            Command::System(system::Command::Probe { .. }) => crate::PROBE_MODEL_VERSION,
            _ => 0,
        }
    }
}

impl<'de> Deserialize<'de> for Command {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        crate::legacy::deserialize_command(deserializer)
    }
}

macro_rules! command_from_domain {
    ($($variant:ident => $domain:ident),*) => {$(
        impl From<$domain::Command> for Command {
            fn from(command: $domain::Command) -> Self {
                Command::$variant(command)
            }
        }
    )*};
}
command_from_domain!(System => system, Identity => identity, Blobs => blobs, Tasks => tasks, Oci => oci);

/// The outcome of applying a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Applied, with nothing to report (also how entries applied before
    /// outcomes existed were remembered).
    Ok,
    /// Applied; what the domain handed back.
    Applied(Outcome),
    /// Refused by a precondition that `apply` checks against current state; nothing changed.
    Rejected(Rejection),
}

impl Response {
    /// The outcome, or the rejection as an error.
    pub fn into_result(self) -> Result<Outcome, Rejection> {
        match self {
            Response::Ok => Ok(Outcome::None),
            Response::Applied(outcome) => Ok(outcome),
            Response::Rejected(rejection) => Err(rejection),
        }
    }
}

/// What an applied command hands back to its proposer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Nothing to report.
    None,
    Blobs(blobs::Outcome),
    Oci(oci::Outcome),
}

impl From<()> for Outcome {
    fn from((): ()) -> Self {
        Outcome::None
    }
}

impl From<blobs::Outcome> for Outcome {
    fn from(outcome: blobs::Outcome) -> Self {
        Outcome::Blobs(outcome)
    }
}

impl From<oci::Outcome> for Outcome {
    fn from(outcome: oci::Outcome) -> Self {
        Outcome::Oci(outcome)
    }
}
