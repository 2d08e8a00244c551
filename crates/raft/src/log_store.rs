//! The Raft log on RocksDB (openraft `storage-v2`).
//!
//! ```text
//!   raft_log   u64 BE index            -> serde_json Entry
//!   raft_meta  b"vote"                 -> serde_json Vote
//!              b"committed"            -> serde_json Option<LogId>
//!              b"last_purged"          -> serde_json LogId
//! ```
//!
//! Every append is one synced write batch, so an entry is on disk before
//! openraft is told it is; the vote, truncation and the purge marker (written
//! in the same batch as the range delete) are synced too. All writes go through
//! the one RocksDB WAL, so they become durable in the order they were made.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, RaftLogReader, StorageIOError};
use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions};
use serde::de::DeserializeOwned;
use serde::Serialize;

use flotilla_storage::engine::{CF_RAFT_LOG, CF_RAFT_META};
use flotilla_storage::Engine;

use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

const VOTE_KEY: &[u8] = b"vote";
const COMMITTED_KEY: &[u8] = b"committed";
const LAST_PURGED_KEY: &[u8] = b"last_purged";

/// The Raft log store over the node's [`Engine`]; cheap to clone, and a clone
/// is also its log reader (RocksDB serializes concurrent access).
#[derive(Clone)]
pub struct LogStore {
    engine: Engine,
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn index_of(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

fn read_logs_err(error: impl std::fmt::Display) -> StorageError {
    StorageIOError::read_logs(AnyError::error(error)).into()
}

fn write_logs_err(error: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_logs(AnyError::error(error)).into()
}

fn synced() -> WriteOptions {
    let mut options = WriteOptions::default();
    options.set_sync(true);
    options
}

impl LogStore {
    /// A log store over `engine`'s `raft_log` and `raft_meta` column families.
    pub fn new(engine: Engine) -> Self {
        LogStore { engine }
    }

    /// Reads a meta value; a value this store wrote and cannot decode is corruption.
    fn get_meta<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, AnyError> {
        let bytes = self.engine.db().get_cf(self.engine.cf(CF_RAFT_META), key).map_err(|e| AnyError::new(&e))?;
        bytes.map(|bytes| serde_json::from_slice(&bytes).map_err(|e| AnyError::new(&e))).transpose()
    }

    fn put_meta_synced<T: Serialize>(&self, key: &[u8], value: &T) -> Result<(), AnyError> {
        let bytes = serde_json::to_vec(value).map_err(|e| AnyError::new(&e))?;
        let cf = self.engine.cf(CF_RAFT_META);
        self.engine.db().put_cf_opt(cf, key, bytes, &synced()).map_err(|e| AnyError::new(&e))
    }

    fn last_entry_log_id(&self) -> Result<Option<LogId>, StorageError> {
        let db = self.engine.db();
        let mut iter = db.iterator_cf(self.engine.cf(CF_RAFT_LOG), IteratorMode::End);
        let Some(item) = iter.next() else { return Ok(None) };
        let (_, value) = item.map_err(read_logs_err)?;
        let entry: Entry = serde_json::from_slice(&value).map_err(read_logs_err)?;
        Ok(Some(entry.log_id))
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(start) => *start,
            Bound::Excluded(start) => start.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let db = self.engine.db();
        let mode = IteratorMode::From(&index_key(start), Direction::Forward);
        let mut entries = Vec::new();
        for item in db.iterator_cf(self.engine.cf(CF_RAFT_LOG), mode) {
            let (key, value) = item.map_err(read_logs_err)?;
            let index = index_of(&key).ok_or_else(|| read_logs_err(format!("malformed log key {key:?}")))?;
            if !range.contains(&index) {
                break;
            }
            entries.push(serde_json::from_slice(&value).map_err(read_logs_err)?);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.get_meta(LAST_PURGED_KEY).map_err(read_logs_err)?;
        let last_log_id = self.last_entry_log_id()?.or(last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.put_meta_synced(VOTE_KEY, vote).map_err(|e| StorageIOError::write_vote(e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.get_meta(VOTE_KEY).map_err(|e| StorageIOError::read_vote(e).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.put_meta_synced(COMMITTED_KEY, &committed).map_err(write_logs_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.get_meta::<Option<LogId>>(COMMITTED_KEY).map_err(read_logs_err)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let cf = self.engine.cf(CF_RAFT_LOG);
        let mut batch = WriteBatch::default();
        for entry in entries {
            let value = serde_json::to_vec(&entry).map_err(write_logs_err)?;
            batch.put_cf(cf, index_key(entry.log_id.index), value);
        }
        let written = self.engine.db().write_opt(batch, &synced());
        callback.log_io_completed(written.as_ref().map(|_| ()).map_err(|e| std::io::Error::other(e.to_string())));
        written.map_err(write_logs_err)
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let cf = self.engine.cf(CF_RAFT_LOG);
        let mut batch = WriteBatch::default();
        // delete_range's end is exclusive: the entry at u64::MAX (never used) is deleted explicitly.
        batch.delete_range_cf(cf, index_key(log_id.index), index_key(u64::MAX));
        batch.delete_cf(cf, index_key(u64::MAX));
        self.engine.db().write_opt(batch, &synced()).map_err(write_logs_err)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Marker and deletion in one synced batch: a crash leaves either both or neither.
        let marker = serde_json::to_vec(&log_id).map_err(write_logs_err)?;
        let mut batch = WriteBatch::default();
        batch.put_cf(self.engine.cf(CF_RAFT_META), LAST_PURGED_KEY, marker);
        batch.delete_range_cf(self.engine.cf(CF_RAFT_LOG), index_key(0), index_key(log_id.index.saturating_add(1)));
        self.engine.db().write_opt(batch, &synced()).map_err(write_logs_err)
    }
}
