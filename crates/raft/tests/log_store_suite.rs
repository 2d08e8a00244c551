//! openraft's storage suite on the RocksDB log store and state machine, plus
//! what the suite does not cover: a multi-chunk snapshot moving real state
//! between two stores, and durability across a reopen.
#![allow(clippy::result_large_err)] // openraft's Suite returns its own StorageError

use std::collections::BTreeMap;
use std::io::SeekFrom;
use std::path::Path;

use flotilla_model::identity::{self, UserRecord};
use flotilla_model::StateRead;
use flotilla_model::{Command, Request, RequestId, Response};
use flotilla_raft::log_store::LogStore;
use flotilla_raft::state_machine::rocks::{StateMachineStore, StateReader};
use flotilla_raft::types::{Entry, LogId, NodeAddr, StorageError, TypeConfig, Vote};
use flotilla_storage::Engine;
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{AnyError, CommittedLeaderId, EntryPayload, Membership, RaftLogReader, RaftSnapshotBuilder};
use openraft::{StorageIOError, StoredMembership};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// openraft's default snapshot chunk size; the test state is several times larger.
const CHUNK_BYTES: usize = 3 << 20;
/// Users written to the leader: with `PASSWORD_HASH_BYTES` each, about 12 MiB of state.
const USERS: usize = 3_000;
const PASSWORD_HASH_BYTES: usize = 4096;

fn io_error(error: impl std::fmt::Display) -> StorageError {
    StorageIOError::write(AnyError::error(error)).into()
}

async fn open_stores(dir: &Path) -> Result<(LogStore, StateMachineStore), StorageError> {
    let engine = Engine::open(&dir.join("db")).map_err(io_error)?;
    let state_machine = StateMachineStore::open(engine.clone(), dir.join("snapshots")).await?;
    Ok((LogStore::new(engine), state_machine))
}

/// Opens a fresh engine in a temporary directory; the directory is the guard.
struct RocksStoreBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for RocksStoreBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = tempfile::tempdir().map_err(io_error)?;
        let (log_store, state_machine) = open_stores(dir.path()).await?;
        Ok((dir, log_store, state_machine))
    }
}

#[test]
fn openraft_storage_suite() -> Result<(), StorageError> {
    Suite::test_all(RocksStoreBuilder)
}

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn membership_entry(index: u64) -> Entry {
    let nodes = BTreeMap::from([(1, NodeAddr { rpc_addr: "127.0.0.1:5001".into(), http_addr: String::new() })]);
    let membership = Membership::new(vec![nodes.keys().copied().collect()], nodes);
    Entry { log_id: log_id(1, index), payload: EntryPayload::Membership(membership) }
}

fn put_user_entry(index: u64, name: &str) -> Entry {
    let user = UserRecord::new(name, "", "h".repeat(PASSWORD_HASH_BYTES));
    let request = Request {
        request_id: RequestId(index.into()),
        time_ms: 1_000 + index,
        command: Command::Identity(identity::Command::PutUser(user)),
    };
    Entry { log_id: log_id(1, index), payload: EntryPayload::Normal(request) }
}

/// Every replicated key/value (all tables but the adapter's reserved 0x00).
fn replicated_state(reader: &StateReader) -> Vec<(Vec<u8>, Vec<u8>)> {
    (1..=u8::MAX).flat_map(|table| reader.scan(&[table], None, usize::MAX).expect("scan")).collect()
}

/// Copies a snapshot into `target` in chunks, the way openraft's receiver writes them.
async fn stream_in_chunks(source: &mut tokio::fs::File, target: &mut tokio::fs::File) -> std::io::Result<usize> {
    source.seek(SeekFrom::Start(0)).await?;
    let (mut offset, mut chunks) = (0u64, 0);
    loop {
        let mut chunk = vec![0u8; CHUNK_BYTES];
        let mut filled = 0;
        while filled < CHUNK_BYTES {
            match source.read(&mut chunk[filled..]).await? {
                0 => break,
                read => filled += read,
            }
        }
        if filled == 0 {
            break;
        }
        target.seek(SeekFrom::Start(offset)).await?;
        target.write_all(&chunk[..filled]).await?;
        offset += filled as u64;
        chunks += 1;
    }
    target.shutdown().await?;
    Ok(chunks)
}

#[tokio::test]
async fn snapshot_moves_state_to_a_fresh_store_in_chunks() -> Result<(), StorageError> {
    let (leader_dir, follower_dir) = (tempfile::tempdir().map_err(io_error)?, tempfile::tempdir().map_err(io_error)?);
    let (_, mut leader) = open_stores(leader_dir.path()).await?;
    let mut entries = vec![membership_entry(1)];
    entries.extend((0..USERS as u64).map(|i| put_user_entry(i + 2, &format!("user-{i:05}"))));
    let responses = leader.apply(entries).await?;
    assert!(responses.iter().all(|response| *response == Response::Ok));
    let leader_state = replicated_state(&leader.reader());

    let mut snapshot = leader.get_snapshot_builder().await.build_snapshot().await?;
    assert_eq!(snapshot.meta.last_log_id, Some(log_id(1, USERS as u64 + 1)));
    let current = leader.get_current_snapshot().await?.expect("current snapshot");
    assert_eq!(current.meta, snapshot.meta);

    {
        let (_, mut follower) = open_stores(follower_dir.path()).await?;
        follower.apply([put_user_entry(1, "stale-user")]).await?;
        let mut incoming = follower.begin_receiving_snapshot().await?;
        let chunks = stream_in_chunks(&mut snapshot.snapshot, &mut incoming).await.map_err(io_error)?;
        assert!(chunks > 1, "state must span several chunks, got {chunks}");
        follower.install_snapshot(&snapshot.meta, incoming).await?;

        assert_eq!(replicated_state(&follower.reader()), leader_state);
        assert_eq!(follower.applied_state().await?, leader.applied_state().await?);
        let installed = follower.get_current_snapshot().await?.expect("installed snapshot is current");
        assert_eq!(installed.meta, snapshot.meta);
    }

    let (_, mut reopened) = open_stores(follower_dir.path()).await?;
    assert_eq!(replicated_state(&reopened.reader()), leader_state);
    assert_eq!(reopened.applied_state().await?, leader.applied_state().await?);
    let kept = reopened.get_current_snapshot().await?.expect("snapshot survives a restart");
    assert_eq!(kept.meta, snapshot.meta);
    Ok(())
}

#[tokio::test]
async fn log_and_vote_survive_reopen() -> Result<(), StorageError> {
    let dir = tempfile::tempdir().map_err(io_error)?;
    let vote = Vote::new_committed(3, 1);
    {
        let (mut log, _) = open_stores(dir.path()).await?;
        log.blocking_append((1..=10).map(|i| put_user_entry(i, "u"))).await?;
        log.save_vote(&vote).await?;
        log.save_committed(Some(log_id(1, 8))).await?;
        log.purge(log_id(1, 4)).await?;
        log.truncate(log_id(1, 9)).await?;
    }
    let (mut log, mut state_machine) = open_stores(dir.path()).await?;
    assert_eq!(log.read_vote().await?, Some(vote));
    assert_eq!(log.read_committed().await?, Some(log_id(1, 8)));
    let state = log.get_log_state().await?;
    assert_eq!((state.last_purged_log_id, state.last_log_id), (Some(log_id(1, 4)), Some(log_id(1, 8))));
    let indexes: Vec<u64> = log.try_get_log_entries(0..).await?.iter().map(|entry| entry.log_id.index).collect();
    assert_eq!(indexes, vec![5, 6, 7, 8]);
    assert_eq!(state_machine.applied_state().await?, (None, StoredMembership::default()));
    Ok(())
}
