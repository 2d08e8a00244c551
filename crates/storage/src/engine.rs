//! The node's RocksDB engine: one database, one column family per concern.
//!
//! ```text
//!   <data_dir>/db/
//!     raft_log   key: log index (u64 BE)            value: serialized openraft Entry
//!     raft_meta  key: b"vote" | b"committed" | b"last_purged"
//!     sm         the replicated state machine (tables keyed by a 1-byte prefix, see flotilla-raft)
//!     local      node-local facts that are never replicated (node id, cluster id)
//! ```
//!
//! Keys are big-endian so that RocksDB's byte order is numeric order.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, Options, DB};

/// Column family holding Raft log entries.
pub const CF_RAFT_LOG: &str = "raft_log";
/// Column family holding the vote, the committed log id and the purge marker.
pub const CF_RAFT_META: &str = "raft_meta";
/// Column family holding the applied state machine.
pub const CF_STATE: &str = "sm";
/// Column family holding node-local, never replicated facts.
pub const CF_LOCAL: &str = "local";

const ALL_COLUMN_FAMILIES: [&str; 4] = [CF_RAFT_LOG, CF_RAFT_META, CF_STATE, CF_LOCAL];

/// Errors from the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
}

/// The open RocksDB database shared by the log store, the state machine and local state.
#[derive(Clone)]
pub struct Engine {
    db: Arc<DB>,
}

impl Engine {
    /// Opens (creating if missing) the database at `path` with every column family.
    pub fn open(path: &Path) -> Result<Self, EngineError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        // Keep the WAL: Raft log appends are written with sync=true and rely on it.
        options.set_max_background_jobs(2);
        options.set_bytes_per_sync(1 << 20);
        let descriptors = ALL_COLUMN_FAMILIES.iter().map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
        let db = DB::open_cf_descriptors(&options, path, descriptors)?;
        Ok(Engine { db: Arc::new(db) })
    }

    /// Compacts every column family fully: drops what deletes and overwrites left
    /// behind (collected blobs, purged log entries). Blocking; can take a while.
    pub fn compact(&self) -> Result<(), EngineError> {
        for name in ALL_COLUMN_FAMILIES {
            self.db.compact_range_cf(self.cf(name), None::<&[u8]>, None::<&[u8]>);
        }
        Ok(())
    }

    /// The raw database, for the crates that build on the engine.
    pub fn db(&self) -> &Arc<DB> {
        &self.db
    }

    /// A column family handle; the names are the `CF_*` constants.
    pub fn cf(&self, name: &str) -> &ColumnFamily {
        self.db.cf_handle(name).unwrap_or_else(|| panic!("column family {name} is created by Engine::open"))
    }

    /// Reads a node-local value.
    pub fn get_local(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        Ok(self.db.get_cf(self.cf(CF_LOCAL), key)?)
    }

    /// Writes a node-local value, synced.
    pub fn put_local(&self, key: &[u8], value: &[u8]) -> Result<(), EngineError> {
        let mut options = rocksdb::WriteOptions::default();
        options.set_sync(true);
        Ok(self.db.put_cf_opt(self.cf(CF_LOCAL), key, value, &options)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_values_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let engine = Engine::open(dir.path()).unwrap();
            engine.put_local(b"node_id", b"7").unwrap();
        }
        let engine = Engine::open(dir.path()).unwrap();
        assert_eq!(engine.get_local(b"node_id").unwrap(), Some(b"7".to_vec()));
    }
}
