//! Why a command did not apply: a [`Rejection`] the proposer is told about, or
//! a store fault that stops the replica.

use std::collections::BTreeMap;

use flotilla_storage::{Digest, ErrorKind};
use serde::{Deserialize, Serialize};

use crate::store::StoreError;

/// A precondition that did not hold; nothing was changed.
///
/// `kind` is what every surface maps to its status once; `code` is the
/// domain's own name for the refusal (`"MANIFEST_BLOB_UNKNOWN"`,
/// `"TASK_CONFLICT"`) for surfaces whose protocol has finer codes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "crate::legacy::RejectionWire")]
pub struct Rejection {
    pub kind: ErrorKind,
    pub code: String,
    pub message: String,
    /// Facts about the refusal a client may need (`digest` → the digest that caused it).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub detail: BTreeMap<String, String>,
}

/// The detail key naming the digest that caused a rejection.
pub const DETAIL_DIGEST: &str = "digest";

impl Rejection {
    pub fn new(kind: ErrorKind, code: &str, message: impl Into<String>) -> Self {
        Rejection { kind, code: code.to_owned(), message: message.into(), detail: BTreeMap::new() }
    }

    /// Adds one detail.
    pub fn with_detail(mut self, key: &str, value: impl Into<String>) -> Self {
        self.detail.insert(key.to_owned(), value.into());
        self
    }

    /// Names the digest that caused the rejection.
    pub fn with_digest(self, digest: &Digest) -> Self {
        self.with_detail(DETAIL_DIGEST, digest.to_string())
    }

    /// The digest that caused the rejection, when one was named.
    pub fn digest(&self) -> Option<&str> {
        self.detail.get(DETAIL_DIGEST).map(String::as_str)
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// Why a domain's apply stopped: refused (nothing written) or the store failed.
#[derive(Debug)]
pub enum Refusal {
    Rejected(Rejection),
    Store(StoreError),
}

impl From<StoreError> for Refusal {
    fn from(error: StoreError) -> Self {
        Refusal::Store(error)
    }
}

impl From<Rejection> for Refusal {
    fn from(rejection: Rejection) -> Self {
        Refusal::Rejected(rejection)
    }
}
