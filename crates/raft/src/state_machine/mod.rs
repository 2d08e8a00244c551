//! The replicated state machine.
//!
//! `model` holds the pure `apply(&mut impl StateWrite, &Request) -> Response`
//! over a key-value view; `memory` is the in-memory view that property tests
//! drive; `rocks` adapts openraft's `RaftStateMachine` onto the RocksDB column
//! family [`flotilla_storage::engine::CF_STATE`], with snapshots taken from a
//! point-in-time RocksDB view.
//!
//! Key space of `CF_STATE` (first byte is the table):
//! ```text
//!   0x00 applied state (reserved for the openraft adapter)
//!   0x01 repo          repo                        -> RepoRecord
//!   0x02 blob          digest                      -> BlobRecord
//!   0x03 repo_blob     repo 0x00 digest            -> LinkRecord
//!   0x04 content       digest                      -> ManifestContent
//!   0x05 repo_manifest repo 0x00 digest            -> ManifestRecord
//!   0x06 tag           repo 0x00 tag               -> TagRecord
//!   0x07 referrer      repo 0x00 subject referrer  -> ()
//!   0x08 user          name                        -> UserRecord
//!   0x09 request       request id (u128 BE)        -> AppliedRequest
//!   0x0a request_time  time_ms BE, request id      -> ()
//!   0x0b settings      b"cluster"                  -> ClusterSettings
//!   0x0c node          node id (u64 BE)            -> NodeRecord
//!   0x0d layout        b"current"                  -> Layout
//!   0x0e blob_link     digest repo                 -> ()   (reverse of repo_blob)
//!   0x0f tombstone     digest                      -> Tombstone
//!   0x10 tombstone_epoch epoch BE, digest          -> ()
//!   0x11 gc            b"state"                    -> GcState
//!   0x12 task          task id                     -> TaskRecord
//! ```

pub mod keys;
pub mod memory;
pub mod model;
pub mod records;
pub mod rocks;

/// An I/O failure of the store under the state machine; fatal for the replica.
#[derive(Debug, Clone, thiserror::Error)]
#[error("state store: {0}")]
pub struct StoreError(pub String);

/// Entries of a scan, in key order.
pub type KeyValues = Vec<(Vec<u8>, Vec<u8>)>;

/// Read access to the state machine's key space.
pub trait StateRead {
    /// The value at `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Up to `limit` entries whose key starts with `prefix`, in key order,
    /// beginning strictly after `after` (a full key) when given.
    fn scan(&self, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<KeyValues, StoreError>;
}

/// Write access; writes are visible to later reads through the same view.
pub trait StateWrite: StateRead {
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>);
    fn delete(&mut self, key: &[u8]);
}
