//! openraft's `RaftStateMachine` on RocksDB.
//!
//! Apply runs the pure [`flotilla_model::apply()`] over an `Overlay`
//! of `CF_STATE` (reads see this batch's pending writes first), then writes the
//! overlay and the applied state (key `0x00 'a'`) in one batch. That batch is
//! not synced: the log is durable, openraft re-applies committed entries after a
//! crash, and any later synced write (a log append, a purge) makes every earlier
//! write durable because they share one WAL.
//!
//! Snapshots are streamed from a point-in-time RocksDB view into one file per
//! snapshot, never held in memory whole (`snapshot_file` holds the format):
//! ```text
//!   "FLOSNAP1" | u32 BE meta length | SnapshotMeta (serde_json)
//!   { u32 BE key length | key | u32 BE value length | value }*
//!   u32::MAX | u64 BE record count
//! ```
//! Installing writes a synced marker (`0x00 'i'` → file name) before clearing
//! the state, so a crash mid-install is finished again by [`StateMachineStore::open`].

use std::fs::File;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{AnyError, EntryPayload, RaftSnapshotBuilder, StorageIOError};
use rocksdb::{IteratorMode, PrefixRange, ReadOptions, SnapshotWithThreadMode, WriteBatch, WriteOptions, DB};
use serde::{Deserialize, Serialize};

use flotilla_storage::engine::CF_STATE;
use flotilla_storage::Engine;

use flotilla_model::store::tables;
use flotilla_model::{Response, StateRead, StateSource, StateWrite, StoreError};

use crate::types::{Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig};

mod snapshot_file;
use snapshot_file::{RecordReader, RecordWriter, SnapshotFiles};

/// Key of the applied state (last applied log id and membership).
const APPLIED_KEY: &[u8] = &[tables::APPLIED, b'a'];
/// Key of the install marker: the snapshot file being installed, if any.
const INSTALLING_KEY: &[u8] = &[tables::APPLIED, b'i'];
/// First key of the replicated tables; everything below is the adapter's own.
const FIRST_DATA_KEY: &[u8] = &[tables::APPLIED + 1];
/// Bytes of records per write batch while installing: bounds memory, not durability.
const INSTALL_BATCH_BYTES: usize = 8 << 20;

type KeyValue = (Vec<u8>, Vec<u8>);
type Pending = std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>>;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct AppliedState {
    last_applied: Option<LogId>,
    membership: StoredMembership,
}

fn sm_read_err(error: impl std::fmt::Display) -> StorageError {
    StorageIOError::read_state_machine(AnyError::error(error)).into()
}

fn sm_write_err(error: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_state_machine(AnyError::error(error)).into()
}

fn snapshot_err(error: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_snapshot(None, AnyError::error(error)).into()
}

fn store_err(error: impl std::fmt::Display) -> StoreError {
    StoreError(error.to_string())
}

fn synced() -> WriteOptions {
    let mut options = WriteOptions::default();
    options.set_sync(true);
    options
}

/// Reads of the committed state for [`Catalog`](flotilla_model::Catalog); cheap to clone.
///
/// While a snapshot is being installed the state is half replaced, so reads
/// fail with a [`StoreError`] instead of returning a torn view.
#[derive(Clone)]
pub struct StateReader {
    engine: Engine,
    installing: Arc<AtomicBool>,
}

impl StateReader {
    fn check_not_installing(&self) -> Result<(), StoreError> {
        match self.installing.load(Ordering::Acquire) {
            true => Err(StoreError("a snapshot is being installed on this replica".into())),
            false => Ok(()),
        }
    }
}

impl StateRead for StateReader {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.check_not_installing()?;
        self.engine.db().get_cf(self.engine.cf(CF_STATE), key).map_err(store_err)
    }

    fn scan(&self, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<Vec<KeyValue>, StoreError> {
        self.check_not_installing()?;
        merged_scan(&self.engine, None, &Pending::new(), prefix, after, limit)
    }
}

impl StateSource for StateReader {
    fn snapshot(&self) -> Box<dyn StateRead + '_> {
        Box::new(SnapshotReader { reader: self, snapshot: self.engine.db().snapshot() })
    }
}

/// The committed state at one sequence number (a RocksDB snapshot): reads
/// through it never see part of a later apply batch.
struct SnapshotReader<'r> {
    reader: &'r StateReader,
    snapshot: SnapshotWithThreadMode<'r, DB>,
}

impl StateRead for SnapshotReader<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.reader.check_not_installing()?;
        let engine = &self.reader.engine;
        self.snapshot.get_cf(engine.cf(CF_STATE), key).map_err(store_err)
    }

    fn scan(&self, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<Vec<KeyValue>, StoreError> {
        self.reader.check_not_installing()?;
        merged_scan(&self.reader.engine, Some(&self.snapshot), &Pending::new(), prefix, after, limit)
    }
}

/// Which side of a merged scan holds the next key.
enum Next {
    Committed,
    Pending { shadows_committed: bool },
}

/// Up to `limit` keys under `prefix` strictly after `after`, from the committed
/// state with `pending` writes (puts and deletes) laid over it.
fn merged_scan(
    engine: &Engine,
    snapshot: Option<&SnapshotWithThreadMode<'_, DB>>,
    pending: &Pending,
    prefix: &[u8],
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Vec<KeyValue>, StoreError> {
    let start = match after {
        Some(after) if after > prefix => after,
        _ => prefix,
    };
    let mut options = ReadOptions::default();
    options.set_iterate_range(PrefixRange(prefix));
    if let Some(snapshot) = snapshot {
        options.set_snapshot(snapshot);
    }
    let mut committed = engine.db().raw_iterator_cf_opt(engine.cf(CF_STATE), options);
    committed.seek(start);
    let mut overlay = pending
        .range::<[u8], _>((Bound::Included(start), Bound::Unbounded))
        .take_while(|(key, _)| key.starts_with(prefix))
        .peekable();
    let mut entries = Vec::new();
    while entries.len() < limit {
        let next = match (committed.key(), overlay.peek()) {
            (None, None) => break,
            (Some(_), None) => Next::Committed,
            (None, Some(_)) => Next::Pending { shadows_committed: false },
            (Some(c), Some((p, _))) if p.as_slice() <= c => Next::Pending { shadows_committed: p.as_slice() == c },
            (Some(_), Some(_)) => Next::Committed,
        };
        let (key, value) = match next {
            Next::Committed => {
                let entry =
                    (committed.key().unwrap_or_default().to_vec(), committed.value().unwrap_or_default().to_vec());
                committed.next();
                entry
            }
            Next::Pending { shadows_committed } => {
                if shadows_committed {
                    committed.next();
                }
                match overlay.next() {
                    Some((key, Some(value))) => (key.clone(), value.clone()),
                    _ => continue,
                }
            }
        };
        if after != Some(key.as_slice()) {
            entries.push((key, value));
        }
    }
    committed.status().map_err(store_err)?;
    Ok(entries)
}

/// The writes of one apply batch over the committed state.
struct Overlay<'e> {
    engine: &'e Engine,
    pending: Pending,
}

impl StateRead for Overlay<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.pending.get(key) {
            Some(value) => Ok(value.clone()),
            None => self.engine.db().get_cf(self.engine.cf(CF_STATE), key).map_err(store_err),
        }
    }

    fn scan(&self, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<Vec<KeyValue>, StoreError> {
        merged_scan(self.engine, None, &self.pending, prefix, after, limit)
    }
}

impl StateWrite for Overlay<'_> {
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        debug_assert!(key.as_slice() >= FIRST_DATA_KEY, "table 0x00 is reserved for the adapter");
        self.pending.insert(key, Some(value));
    }

    fn delete(&mut self, key: &[u8]) {
        self.pending.insert(key.to_vec(), None);
    }
}

/// The state machine over `CF_STATE`, with its snapshot files.
pub struct StateMachineStore {
    engine: Engine,
    snapshots: Arc<SnapshotFiles>,
    applied: AppliedState,
    /// The file a snapshot is being received into, if any.
    incoming: Option<PathBuf>,
    installing: Arc<AtomicBool>,
}

impl StateMachineStore {
    /// Opens the state machine over `engine`, keeping snapshot files in
    /// `snapshot_dir`; finishes a snapshot install that a crash interrupted.
    pub async fn open(engine: Engine, snapshot_dir: PathBuf) -> Result<Self, StorageError> {
        let installing = Arc::new(AtomicBool::new(false));
        let (engine, installing_flag) = (engine.clone(), installing.clone());
        let (engine, snapshots, applied) = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&snapshot_dir).map_err(snapshot_err)?;
            if let Some(name) = engine.db().get_cf(engine.cf(CF_STATE), INSTALLING_KEY).map_err(sm_read_err)? {
                let path = snapshot_dir.join(String::from_utf8_lossy(&name).as_ref());
                tracing::warn!(path = %path.display(), "finishing an interrupted snapshot install");
                let meta = RecordReader::open(&path).map_err(snapshot_err)?.meta().clone();
                replace_state(&engine, &installing_flag, &path, &meta)?;
            }
            let applied = read_applied(&engine)?;
            let snapshots = SnapshotFiles::open(snapshot_dir, applied.last_applied).map_err(snapshot_err)?;
            Ok::<_, StorageError>((engine, snapshots, applied))
        })
        .await
        .map_err(sm_read_err)??;
        Ok(StateMachineStore { engine, snapshots: Arc::new(snapshots), applied, incoming: None, installing })
    }

    /// A reader of the committed state, for queries from other tasks.
    pub fn reader(&self) -> StateReader {
        StateReader { engine: self.engine.clone(), installing: self.installing.clone() }
    }
}

fn read_applied(engine: &Engine) -> Result<AppliedState, StorageError> {
    match engine.db().get_cf(engine.cf(CF_STATE), APPLIED_KEY).map_err(sm_read_err)? {
        Some(bytes) => serde_json::from_slice(&bytes).map_err(sm_read_err),
        None => Ok(AppliedState::default()),
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.applied.last_applied, self.applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut overlay = Overlay { engine: &self.engine, pending: Pending::new() };
        let mut applied = self.applied.clone();
        let mut responses = Vec::new();
        for entry in entries {
            let response = match &entry.payload {
                EntryPayload::Blank => Response::Ok,
                EntryPayload::Normal(request) => flotilla_model::apply(&mut overlay, request)
                    .map_err(|error| StorageIOError::apply(entry.log_id, AnyError::new(&error)))?,
                EntryPayload::Membership(membership) => {
                    applied.membership = StoredMembership::new(Some(entry.log_id), membership.clone());
                    Response::Ok
                }
            };
            applied.last_applied = Some(entry.log_id);
            responses.push(response);
        }
        if responses.is_empty() {
            return Ok(responses);
        }
        let cf = self.engine.cf(CF_STATE);
        let mut batch = WriteBatch::default();
        for (key, value) in overlay.pending {
            match value {
                Some(value) => batch.put_cf(cf, key, value),
                None => batch.delete_cf(cf, key),
            }
        }
        batch.put_cf(cf, APPLIED_KEY, serde_json::to_vec(&applied).map_err(sm_write_err)?);
        self.engine.db().write(batch).map_err(sm_write_err)?;
        self.applied = applied;
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder { engine: self.engine.clone(), snapshots: self.snapshots.clone() }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        if let Some(abandoned) = self.incoming.take() {
            let _ = tokio::fs::remove_file(abandoned).await;
        }
        let path = self.snapshots.temp_path("incoming");
        let file = tokio::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path).await;
        let file = file.map_err(snapshot_err)?;
        self.incoming = Some(path);
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError> {
        let received = snapshot.into_std().await;
        let (engine, snapshots, installing) = (self.engine.clone(), self.snapshots.clone(), self.installing.clone());
        let (snapshot_meta, incoming) = (meta.clone(), self.incoming.take());
        let applied = tokio::task::spawn_blocking(move || {
            let meta = snapshot_meta;
            let _no_build_meanwhile = snapshots.lock_state();
            let path = snapshots.place_received(received, incoming.as_deref(), &meta).map_err(snapshot_err)?;
            let marker = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
            engine.db().put_cf_opt(engine.cf(CF_STATE), INSTALLING_KEY, marker, &synced()).map_err(sm_write_err)?;
            let applied = replace_state(&engine, &installing, &path, &meta)?;
            snapshots.publish(&meta, &path).map_err(snapshot_err)?;
            Ok::<_, StorageError>(applied)
        })
        .await
        .map_err(sm_write_err)??;
        tracing::info!(snapshot_id = %meta.snapshot_id, last_log_id = ?meta.last_log_id, "installed snapshot");
        self.applied = applied;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let snapshots = self.snapshots.clone();
        let current = tokio::task::spawn_blocking(move || snapshots.open_current()).await.map_err(snapshot_err)?;
        let Some((meta, file)) = current.map_err(snapshot_err)? else { return Ok(None) };
        Ok(Some(Snapshot { meta, snapshot: Box::new(tokio::fs::File::from_std(file)) }))
    }
}

/// Replaces the whole replicated state with the records of the snapshot file at
/// `path`, then (synced, in the last batch) sets the applied state and clears
/// the install marker. Readers fail while this runs, and after it fails.
fn replace_state(
    engine: &Engine,
    installing: &AtomicBool,
    path: &Path,
    meta: &SnapshotMeta,
) -> Result<AppliedState, StorageError> {
    installing.store(true, Ordering::Release);
    let (db, cf) = (engine.db(), engine.cf(CF_STATE));
    let last_key = db.iterator_cf(cf, IteratorMode::End).next().transpose().map_err(sm_read_err)?.map(|(key, _)| key);
    if let Some(last_key) = last_key.filter(|key| &key[..] >= FIRST_DATA_KEY) {
        let mut clear = WriteBatch::default();
        clear.delete_range_cf(cf, FIRST_DATA_KEY, &last_key);
        clear.delete_cf(cf, &last_key);
        db.write(clear).map_err(sm_write_err)?;
    }
    let mut records = RecordReader::open(path).map_err(snapshot_err)?;
    let mut batch = WriteBatch::default();
    while let Some((key, value)) = records.next_record().map_err(snapshot_err)? {
        batch.put_cf(cf, key, value);
        if batch.size_in_bytes() >= INSTALL_BATCH_BYTES {
            db.write(std::mem::take(&mut batch)).map_err(sm_write_err)?;
        }
    }
    let applied = AppliedState { last_applied: meta.last_log_id, membership: meta.last_membership.clone() };
    batch.put_cf(cf, APPLIED_KEY, serde_json::to_vec(&applied).map_err(sm_write_err)?);
    batch.delete_cf(cf, INSTALLING_KEY);
    db.write_opt(batch, &synced()).map_err(sm_write_err)?;
    installing.store(false, Ordering::Release);
    Ok(applied)
}

/// Builds snapshots from a point-in-time view of `CF_STATE`.
pub struct SnapshotBuilder {
    engine: Engine,
    snapshots: Arc<SnapshotFiles>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (engine, snapshots) = (self.engine.clone(), self.snapshots.clone());
        let (meta, file) = tokio::task::spawn_blocking(move || build_snapshot_file(&engine, &snapshots))
            .await
            .map_err(snapshot_err)??;
        tracing::info!(snapshot_id = %meta.snapshot_id, last_log_id = ?meta.last_log_id, "built snapshot");
        Ok(Snapshot { meta, snapshot: Box::new(tokio::fs::File::from_std(file)) })
    }
}

/// Streams a RocksDB snapshot of `CF_STATE` into a new snapshot file and publishes it.
fn build_snapshot_file(engine: &Engine, snapshots: &SnapshotFiles) -> Result<(SnapshotMeta, File), StorageError> {
    let db = engine.db();
    let view = {
        let _no_install_meanwhile = snapshots.lock_state();
        db.snapshot()
    };
    let applied: AppliedState = match view.get_cf(engine.cf(CF_STATE), APPLIED_KEY).map_err(sm_read_err)? {
        Some(bytes) => serde_json::from_slice(&bytes).map_err(sm_read_err)?,
        None => AppliedState::default(),
    };
    let meta = SnapshotMeta {
        last_log_id: applied.last_applied,
        last_membership: applied.membership,
        snapshot_id: snapshots.new_snapshot_id(applied.last_applied),
    };
    let temp = snapshots.temp_path("building");
    let mut writer = RecordWriter::create(&temp, &meta).map_err(snapshot_err)?;
    let mut options = ReadOptions::default();
    options.set_snapshot(&view);
    options.set_iterate_lower_bound(FIRST_DATA_KEY);
    for item in db.iterator_cf_opt(engine.cf(CF_STATE), options, IteratorMode::Start) {
        let (key, value) = item.map_err(sm_read_err)?;
        writer.write_record(&key, &value).map_err(snapshot_err)?;
    }
    writer.finish().map_err(snapshot_err)?;
    let path = snapshots.place(&temp).map_err(snapshot_err)?;
    let file = File::open(&path).map_err(snapshot_err)?;
    snapshots.publish(&meta, &path).map_err(snapshot_err)?;
    Ok((meta, file))
}
