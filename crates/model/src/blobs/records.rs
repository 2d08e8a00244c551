//! The records of the blob index.

use serde::{Deserialize, Serialize};

/// A blob known to the cluster, with the count of records that hold it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRecord {
    pub size: u64,
    /// Number of holder rows (`refs`): records of any domain that hold this
    /// blob; garbage collection takes only blobs held by none.
    pub refcount: u64,
    pub created_ms: u64,
    /// When `refcount` last became zero (or the blob was recorded unreferenced);
    /// garbage collection waits a grace period from here. `None` while referenced.
    pub unreferenced_since_ms: Option<u64>,
}

/// A blob forgotten by garbage collection. Nodes delete their copies from these;
/// an upload that began before `epoch` cannot record the blob again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    /// The collection that made it.
    pub epoch: u64,
    /// When the collection was applied (proposer's clock); copies written later are kept.
    pub collected_ms: u64,
}

/// Garbage-collection bookkeeping, one record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcState {
    /// Collections applied so far.
    pub epoch: u64,
    /// Tombstones of epochs up to here have expired; an upload that began
    /// before it cannot be checked against them and is refused.
    pub floor: u64,
    /// Every record has its holder rows and unreferenced index entry. False in
    /// a state 0.1.0 wrote until the backfill (`Command::Backfill`) ends;
    /// garbage collection runs the backfill first.
    #[serde(default)]
    pub indexed: bool,
}
