//! Resumable upload sessions (OCI chunked and streamed uploads) that survive
//! a restart.
//!
//! ```text
//!   <root>/                       <data>/uploads, on the blob store's filesystem
//!   └── <uuid>/                   one directory per session, named by its UploadId
//!       ├── data                  the bytes received so far (fsynced per append)
//!       └── meta.json             repo, offset, start time (temp + fsync + rename)
//! ```
//!
//! `meta.json` is the truth about the offset, and it is written only after the
//! data it counts is synced. At open, and before each append, `data` is cut back
//! to the offset, so a torn or refused write never becomes part of a blob.
//!
//! While the process lives each session keeps a running sha256, so `finish`
//! need not re-read the data; after a restart (or for a sha512 digest) the data
//! is re-hashed once. Appends, finish and cancel of one session are serialized
//! by a per-session async mutex; `get` never waits for a running append.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use crate::blob_store::{BlobError, BlobStore, ByteStream};
use crate::fs::sync_dir;
use crate::write_behind::WriteBehindFile;
use crate::{Algorithm, Digest, Hasher};

/// Bytes read per chunk when re-hashing a session's data after a restart.
const REHASH_CHUNK_BYTES: usize = 1 << 20;
const DATA_FILE: &str = "data";
const META_FILE: &str = "meta.json";
const META_TEMP_FILE: &str = "meta.json.tmp";

/// The id of an upload session: a UUID, shown in its hyphenated form.
///
/// Sessions live on the disk of the process that started them. So that a
/// cluster can send a session's later requests to that process, an id may
/// name its *origin*: a UUIDv8 (RFC 9562, custom layout) whose first 48 bits
/// are the origin number and whose other 74 free bits are random. Ids without
/// an origin are random UUIDv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UploadId(pub uuid::Uuid);

/// The largest origin an upload id can carry (48 bits).
pub const MAX_UPLOAD_ORIGIN: u64 = (1 << 48) - 1;

impl UploadId {
    /// A fresh random id without an origin.
    pub fn random() -> Self {
        UploadId(uuid::Uuid::new_v4())
    }

    /// A fresh random id naming `origin` (at most [`MAX_UPLOAD_ORIGIN`]).
    pub fn with_origin(origin: u64) -> Self {
        assert!(origin <= MAX_UPLOAD_ORIGIN, "upload origin {origin} does not fit in 48 bits");
        let mut bytes = *uuid::Uuid::new_v4().as_bytes();
        bytes[..6].copy_from_slice(&origin.to_be_bytes()[2..]);
        UploadId(uuid::Uuid::new_v8(bytes))
    }

    /// The origin this id names, if it is an origin-tagged (v8) id.
    pub fn origin(&self) -> Option<u64> {
        if self.0.get_version_num() != 8 {
            return None;
        }
        let mut origin = [0u8; 8];
        origin[2..].copy_from_slice(&self.0.as_bytes()[..6]);
        Some(u64::from_be_bytes(origin))
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

/// A string that is not a lowercase hyphenated UUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an upload id")]
pub struct InvalidUploadId;

impl FromStr for UploadId {
    type Err = InvalidUploadId;
    /// Accepts only the form `Display` produces, so ids round-trip exactly.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let id = uuid::Uuid::try_parse(text).map(UploadId).map_err(|_| InvalidUploadId)?;
        if id.to_string() != text {
            return Err(InvalidUploadId);
        }
        Ok(id)
    }
}

/// What a client sees of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadSession {
    pub id: UploadId,
    pub repo: String,
    /// Bytes received so far.
    pub offset: u64,
    /// When the session was created, in milliseconds since the Unix epoch.
    pub started_ms: u64,
}

/// One session in memory.
struct Slot {
    /// Serializes appends, finish and cancel of the session.
    io: tokio::sync::Mutex<SlotIo>,
    /// The last committed state; only changed while `io` is held.
    session: parking_lot::Mutex<UploadSession>,
}

struct SlotIo {
    /// sha256 of `data[..offset]`, when known without re-reading the file.
    hasher: Option<Hasher>,
    /// Set by finish, cancel and expire: whoever waited for `io` finds the session gone.
    closed: bool,
}

impl Slot {
    fn new(session: UploadSession, hasher: Option<Hasher>) -> Arc<Self> {
        let io = SlotIo { hasher, closed: false };
        Arc::new(Slot { io: tokio::sync::Mutex::new(io), session: parking_lot::Mutex::new(session) })
    }

    fn offset(&self) -> u64 {
        self.session.lock().offset
    }
}

/// Every open upload session of this node.
pub struct Uploads {
    root: PathBuf,
    /// Named in the ids of new sessions, when set.
    origin: Option<u64>,
    sessions: parking_lot::Mutex<HashMap<UploadId, Arc<Slot>>>,
}

impl Uploads {
    /// Opens the sessions directory (`<data>/uploads`), recovering the sessions
    /// a previous run left; unreadable sessions are dropped with a warning.
    pub async fn open(root: PathBuf) -> Result<Self, BlobError> {
        tokio::fs::create_dir_all(&root).await?;
        let uploads = Uploads { root, origin: None, sessions: parking_lot::Mutex::new(HashMap::new()) };
        let mut entries = tokio::fs::read_dir(&uploads.root).await?;
        while let Some(entry) = entries.next_entry().await? {
            let name = entry.file_name();
            match name.to_str().map(UploadId::from_str) {
                Some(Ok(id)) => uploads.recover(id).await,
                _ => tracing::warn!(?name, "ignoring an unexpected entry in the uploads directory"),
            }
        }
        Ok(uploads)
    }

    /// New sessions get ids naming `origin` (see [`UploadId::with_origin`]).
    pub fn with_origin(mut self, origin: u64) -> Self {
        assert!(origin <= MAX_UPLOAD_ORIGIN, "upload origin {origin} does not fit in 48 bits");
        self.origin = Some(origin);
        self
    }

    async fn recover(&self, id: UploadId) {
        let dir = self.dir_of(id);
        match recover_session(&dir, id).await {
            Ok(session) => {
                self.sessions.lock().insert(id, Slot::new(session, None));
            }
            Err(error) => {
                tracing::warn!(%id, %error, "dropping an unreadable upload session");
                remove_dir_logged(&dir).await;
            }
        }
    }

    fn dir_of(&self, id: UploadId) -> PathBuf {
        self.root.join(id.to_string())
    }

    fn slot(&self, id: UploadId) -> Result<Arc<Slot>, BlobError> {
        self.sessions.lock().get(&id).cloned().ok_or(BlobError::NotFound)
    }

    /// Removes a session whose `io` lock the caller holds.
    async fn close(&self, id: UploadId, io: &mut SlotIo) -> Result<(), BlobError> {
        io.closed = true;
        self.sessions.lock().remove(&id);
        Ok(tokio::fs::remove_dir_all(self.dir_of(id)).await?)
    }

    /// Starts an empty session for `repo`.
    pub async fn create(&self, repo: &str, now_ms: u64) -> Result<UploadSession, BlobError> {
        let id = self.origin.map_or_else(UploadId::random, UploadId::with_origin);
        let session = UploadSession { id, repo: repo.to_owned(), offset: 0, started_ms: now_ms };
        let dir = self.dir_of(session.id);
        tokio::fs::create_dir(&dir).await?;
        if let Err(error) = init_session_dir(&dir, &self.root, &session).await {
            remove_dir_logged(&dir).await;
            return Err(error);
        }
        let slot = Slot::new(session.clone(), Some(Hasher::new(Algorithm::Sha256)));
        self.sessions.lock().insert(session.id, slot);
        Ok(session)
    }

    /// The session's last committed state (`NotFound` if absent); never waits for an append.
    pub async fn get(&self, id: UploadId) -> Result<UploadSession, BlobError> {
        Ok(self.slot(id)?.session.lock().clone())
    }

    /// Appends `body` at the session's end and returns the new state.
    ///
    /// With `expected_start`, the chunk must start at the current offset
    /// (`UploadOffsetMismatch` otherwise). `TooLarge` once the session would
    /// exceed `max_total` bytes. Any failure leaves the session as it was.
    pub async fn append(
        &self,
        id: UploadId,
        expected_start: Option<u64>,
        body: ByteStream,
        max_total: u64,
    ) -> Result<UploadSession, BlobError> {
        let slot = self.slot(id)?;
        let mut io = slot.io.lock().await;
        if io.closed {
            return Err(BlobError::NotFound);
        }
        let start = slot.offset();
        if expected_start.is_some_and(|expected| expected != start) {
            return Err(BlobError::UploadOffsetMismatch { current: start });
        }
        let dir = self.dir_of(id);
        let mut hasher = io.hasher.clone();
        let end = append_body(&dir.join(DATA_FILE), start, body, max_total, &mut hasher).await?;
        let mut session = slot.session.lock().clone();
        session.offset = end;
        write_meta(&dir, &session).await?;
        io.hasher = hasher;
        *slot.session.lock() = session.clone();
        Ok(session)
    }

    /// Verifies the data hashes to `digest`, hands the data file to
    /// `store.put_file` and ends the session; returns the size. On
    /// `DigestMismatch` (or a store error) the session stays open.
    pub async fn finish(&self, id: UploadId, digest: &Digest, store: &dyn BlobStore) -> Result<u64, BlobError> {
        let slot = self.slot(id)?;
        let mut io = slot.io.lock().await;
        if io.closed {
            return Err(BlobError::NotFound);
        }
        let offset = slot.offset();
        let data = self.dir_of(id).join(DATA_FILE);
        let file = tokio::fs::OpenOptions::new().write(true).open(&data).await?;
        // An append dropped midway may have left bytes past the offset.
        file.set_len(offset).await?;
        let actual = match (&io.hasher, digest.algorithm()) {
            (Some(hasher), Algorithm::Sha256) => hasher.clone().finish(),
            (_, algorithm) => {
                let hasher = rehash(&data, algorithm).await?;
                if algorithm == Algorithm::Sha256 {
                    io.hasher = Some(hasher.clone());
                }
                hasher.finish()
            }
        };
        if &actual != digest {
            return Err(BlobError::DigestMismatch { expected: digest.clone(), actual });
        }
        file.sync_all().await?;
        let size = store.put_file(digest, &data).await?;
        debug_assert_eq!(size, offset, "the adopted file holds exactly the session's bytes");
        if let Err(error) = self.close(id, &mut io).await {
            tracing::warn!(%id, %error, "could not remove a finished upload session's directory");
        }
        Ok(size)
    }

    /// Abandons a session (`NotFound` if absent).
    pub async fn cancel(&self, id: UploadId) -> Result<(), BlobError> {
        let slot = self.slot(id)?;
        let mut io = slot.io.lock().await;
        if io.closed {
            return Err(BlobError::NotFound);
        }
        self.close(id, &mut io).await
    }

    /// Removes sessions started before `older_than_ms`; returns how many. A
    /// session with an append running is busy, not abandoned: it is skipped.
    pub async fn expire(&self, older_than_ms: u64) -> Result<usize, BlobError> {
        let expired: Vec<(UploadId, Arc<Slot>)> = self
            .sessions
            .lock()
            .iter()
            .filter(|(_, slot)| slot.session.lock().started_ms < older_than_ms)
            .map(|(id, slot)| (*id, slot.clone()))
            .collect();
        let mut removed = 0;
        for (id, slot) in expired {
            let Ok(mut io) = slot.io.try_lock() else { continue };
            if io.closed {
                continue;
            }
            if let Err(error) = self.close(id, &mut io).await {
                tracing::warn!(%id, %error, "could not remove an expired upload session's directory");
            }
            removed += 1;
        }
        Ok(removed)
    }
}

/// Creates the empty data file and the first meta, and makes them durable.
async fn init_session_dir(dir: &Path, root: &Path, session: &UploadSession) -> Result<(), BlobError> {
    tokio::fs::File::create(dir.join(DATA_FILE)).await?;
    write_meta(dir, session).await?;
    sync_dir(dir).await?;
    sync_dir(root).await
}

/// Writes `body` to `data` from `start` (cutting anything past it first);
/// returns the new end. The data is synced before this returns.
async fn append_body(
    data: &Path,
    start: u64,
    mut body: ByteStream,
    max_total: u64,
    hasher: &mut Option<Hasher>,
) -> Result<u64, BlobError> {
    let mut file = tokio::fs::OpenOptions::new().write(true).open(data).await?;
    file.set_len(start).await?;
    file.seek(std::io::SeekFrom::Start(start)).await?;
    let mut writer = WriteBehindFile::new(file, start).await?;
    let mut end = start;
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        end += chunk.len() as u64;
        if end > max_total {
            return Err(BlobError::TooLarge { limit: max_total });
        }
        if let Some(hasher) = hasher.as_mut() {
            hasher.update(&chunk);
        }
        writer.write(&chunk).await?;
    }
    writer.sync_data().await?;
    Ok(end)
}

/// Replaces `meta.json` atomically and durably (the directory entry may lag,
/// which leaves the previous, still consistent, offset).
async fn write_meta(dir: &Path, session: &UploadSession) -> Result<(), BlobError> {
    let temp = dir.join(META_TEMP_FILE);
    let bytes = serde_json::to_vec(session).map_err(std::io::Error::other)?;
    let mut file = tokio::fs::File::create(&temp).await?;
    file.write_all(&bytes).await?;
    file.flush().await?;
    file.sync_all().await?;
    tokio::fs::rename(&temp, dir.join(META_FILE)).await?;
    Ok(())
}

/// Reads a session back from disk and cuts its data to the recorded offset.
async fn recover_session(dir: &Path, id: UploadId) -> Result<UploadSession, BlobError> {
    let bytes = tokio::fs::read(dir.join(META_FILE)).await?;
    let session: UploadSession = serde_json::from_slice(&bytes).map_err(std::io::Error::other)?;
    if session.id != id {
        return Err(std::io::Error::other(format!("meta.json names session {}", session.id)).into());
    }
    let data = tokio::fs::OpenOptions::new().write(true).open(dir.join(DATA_FILE)).await?;
    let length = data.metadata().await?.len();
    if length < session.offset {
        let message = format!("data holds {length} bytes, meta.json records {}", session.offset);
        return Err(std::io::Error::other(message).into());
    }
    data.set_len(session.offset).await?;
    Ok(session)
}

/// Hashes a whole file on the blocking pool; returns the unfinished hasher so a
/// sha256 can keep running.
async fn rehash(path: &Path, algorithm: Algorithm) -> Result<Hasher, BlobError> {
    let path = path.to_owned();
    let hashed = tokio::task::spawn_blocking(move || -> std::io::Result<Hasher> {
        let mut file = std::fs::File::open(path)?;
        let mut hasher = Hasher::new(algorithm);
        let mut buffer = vec![0u8; REHASH_CHUNK_BYTES];
        loop {
            match file.read(&mut buffer)? {
                0 => return Ok(hasher),
                read => hasher.update(&buffer[..read]),
            }
        }
    });
    Ok(hashed.await.map_err(std::io::Error::other)??)
}

async fn remove_dir_logged(dir: &Path) {
    if let Err(error) = tokio::fs::remove_dir_all(dir).await {
        tracing::warn!(dir = %dir.display(), %error, "could not remove an upload session directory");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob_store::collect;
    use crate::fs::FsBlobStore;
    use crate::memory::MemoryBlobStore;
    use crate::test_suite::stream_of;
    use bytes::Bytes;

    const LIMIT: u64 = 1 << 20;

    fn body(data: &[u8]) -> ByteStream {
        stream_of(data, 3)
    }

    async fn open(dir: &tempfile::TempDir) -> Uploads {
        Uploads::open(dir.path().join("uploads")).await.unwrap()
    }

    fn session_dir(dir: &tempfile::TempDir, id: UploadId) -> PathBuf {
        dir.path().join("uploads").join(id.to_string())
    }

    #[tokio::test]
    async fn chunked_upload_with_offsets_lands_in_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let (uploads, store) = (open(&dir).await, FsBlobStore::open(dir.path().join("blobs")).await.unwrap());
        let id = uploads.create("library/alpine", 1).await.unwrap().id;
        assert_eq!(uploads.append(id, Some(0), body(b"hello "), LIMIT).await.unwrap().offset, 6);
        for stale in [0, 3, 9] {
            let retry = uploads.append(id, Some(stale), body(b"hello "), LIMIT).await;
            assert!(matches!(retry, Err(BlobError::UploadOffsetMismatch { current: 6 })));
        }
        uploads.append(id, Some(6), body(b"world"), LIMIT).await.unwrap();
        let session = uploads.get(id).await.unwrap();
        assert_eq!((session.offset, session.repo.as_str(), session.started_ms), (11, "library/alpine", 1));
        let digest = Digest::sha256_of(b"hello world");
        assert_eq!(uploads.finish(id, &digest, &store).await.unwrap(), 11);
        assert_eq!(collect(store.read(&digest, None).await.unwrap()).await.unwrap(), b"hello world");
        assert!(matches!(uploads.get(id).await, Err(BlobError::NotFound)));
        assert!(matches!(uploads.append(id, None, body(b"x"), LIMIT).await, Err(BlobError::NotFound)));
        assert!(matches!(uploads.finish(id, &digest, &store).await, Err(BlobError::NotFound)));
        assert!(!session_dir(&dir, id).exists(), "the data file was adopted, the session removed");
    }

    #[tokio::test]
    async fn sessions_survive_a_restart_and_finish_rehashes_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let id = {
            let uploads = open(&dir).await;
            let id = uploads.create("repo", 1).await.unwrap().id;
            uploads.append(id, None, body(b"abc"), LIMIT).await.unwrap();
            id
        };
        // A torn write past the last recorded offset, as a crash mid-append leaves.
        let mut data = std::fs::OpenOptions::new().append(true).open(session_dir(&dir, id).join("data")).unwrap();
        std::io::Write::write_all(&mut data, b"GARBAGE").unwrap();
        let uploads = open(&dir).await;
        assert_eq!(uploads.get(id).await.unwrap().offset, 3, "recovered at the recorded offset");
        uploads.append(id, Some(3), body(b"def"), LIMIT).await.unwrap();
        let store = MemoryBlobStore::new();
        let wrong = Digest::sha256_of(b"abcGARBAGEdef");
        assert!(matches!(uploads.finish(id, &wrong, &store).await, Err(BlobError::DigestMismatch { .. })));
        let digest = Digest::sha256_of(b"abcdef");
        assert_eq!(uploads.finish(id, &digest, &store).await.unwrap(), 6);
        assert_eq!(collect(store.read(&digest, None).await.unwrap()).await.unwrap(), b"abcdef");
    }

    #[tokio::test]
    async fn a_wrong_digest_keeps_the_session_and_sha512_is_verified() {
        let dir = tempfile::tempdir().unwrap();
        let (uploads, store) = (open(&dir).await, MemoryBlobStore::new());
        let id = uploads.create("repo", 1).await.unwrap().id;
        uploads.append(id, None, body(b"payload"), LIMIT).await.unwrap();
        let claimed = Digest::sha256_of(b"something else");
        match uploads.finish(id, &claimed, &store).await {
            Err(BlobError::DigestMismatch { expected, actual }) => {
                assert_eq!((expected, actual), (claimed.clone(), Digest::sha256_of(b"payload")));
            }
            other => panic!("expected a digest mismatch, got {other:?}"),
        }
        assert_eq!(uploads.get(id).await.unwrap().offset, 7, "the client can still see the session");
        assert_eq!(store.stat(&claimed).await.unwrap(), None);
        let sha512 = Digest::compute(Algorithm::Sha512, b"payload");
        assert_eq!(uploads.finish(id, &sha512, &store).await.unwrap(), 7);
        assert_eq!(store.stat(&sha512).await.unwrap(), Some(7));
    }

    #[tokio::test]
    async fn too_large_and_broken_bodies_leave_the_offset_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let uploads = open(&dir).await;
        let id = uploads.create("repo", 1).await.unwrap().id;
        uploads.append(id, None, body(b"1234"), 8).await.unwrap();
        let too_big = uploads.append(id, None, body(b"56789"), 8).await;
        assert!(matches!(too_big, Err(BlobError::TooLarge { limit: 8 })));
        assert_eq!(uploads.get(id).await.unwrap().offset, 4, "a refused chunk does not count");
        // Larger than the write buffer, so the torn bytes really reach the file.
        let torn = Bytes::from(vec![b'x'; 300_000]);
        let broken: ByteStream = Box::pin(futures::stream::iter([Ok(torn), Err(std::io::Error::other("cut"))]));
        assert!(matches!(uploads.append(id, None, broken, LIMIT).await, Err(BlobError::Io(_))));
        assert_eq!(uploads.get(id).await.unwrap().offset, 4);
        assert_eq!(uploads.append(id, Some(4), body(b"5678"), 8).await.unwrap().offset, 8, "exactly the limit is fine");
        let data = session_dir(&dir, id).join("data");
        assert_eq!(std::fs::metadata(data).unwrap().len(), 8, "torn bytes are cut before appending");
        let store = MemoryBlobStore::new();
        assert_eq!(uploads.finish(id, &Digest::sha256_of(b"12345678"), &store).await.unwrap(), 8);
    }

    #[tokio::test]
    async fn cancel_and_expire_remove_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let uploads = open(&dir).await;
        let cancelled = uploads.create("repo", 10).await.unwrap().id;
        uploads.cancel(cancelled).await.unwrap();
        assert!(matches!(uploads.cancel(cancelled).await, Err(BlobError::NotFound)));
        assert!(matches!(uploads.get(cancelled).await, Err(BlobError::NotFound)));
        assert!(!session_dir(&dir, cancelled).exists());
        let old = uploads.create("repo", 5).await.unwrap().id;
        let new = uploads.create("repo", 50).await.unwrap().id;
        assert_eq!(uploads.expire(20).await.unwrap(), 1);
        assert_eq!(uploads.expire(20).await.unwrap(), 0);
        assert!(uploads.get(old).await.is_err());
        drop(uploads);
        let uploads = open(&dir).await;
        assert!(uploads.get(old).await.is_err(), "an expired session does not come back");
        assert_eq!(uploads.get(new).await.unwrap().started_ms, 50);
    }

    #[tokio::test]
    async fn expire_skips_a_busy_session_and_a_dropped_append_leaves_no_trace() {
        let dir = tempfile::tempdir().unwrap();
        let uploads = Arc::new(open(&dir).await);
        let id = uploads.create("repo", 0).await.unwrap().id;
        let endless: ByteStream =
            Box::pin(futures::stream::iter([Ok(Bytes::from_static(b"torn"))]).chain(futures::stream::pending()));
        let running = tokio::spawn({
            let uploads = uploads.clone();
            async move { uploads.append(id, None, endless, LIMIT).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(uploads.expire(100).await.unwrap(), 0, "an append is running");
        assert_eq!(uploads.get(id).await.unwrap().offset, 0, "get does not wait for the append");
        running.abort();
        assert!(running.await.unwrap_err().is_cancelled());
        assert_eq!(uploads.append(id, Some(0), body(b"ok"), LIMIT).await.unwrap().offset, 2);
        let store = MemoryBlobStore::new();
        assert_eq!(uploads.finish(id, &Digest::sha256_of(b"ok"), &store).await.unwrap(), 2);
    }

    #[tokio::test]
    async fn concurrent_appends_to_one_session_are_serialized() {
        let dir = tempfile::tempdir().unwrap();
        let uploads = Arc::new(open(&dir).await);
        let id = uploads.create("repo", 0).await.unwrap().id;
        let slow = |byte: u8| -> ByteStream {
            let chunks = (0..8).map(move |_| Ok(Bytes::from(vec![byte; 1000])));
            Box::pin(futures::stream::iter(chunks).then(|chunk| async {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                chunk
            }))
        };
        let appends = [b'a', b'b'].map(|byte| {
            let uploads = uploads.clone();
            tokio::spawn(async move { uploads.append(id, None, slow(byte), LIMIT).await })
        });
        for append in appends {
            append.await.unwrap().unwrap();
        }
        let data = std::fs::read(session_dir(&dir, id).join("data")).unwrap();
        let (a, b) = (vec![b'a'; 8000], vec![b'b'; 8000]);
        assert!(data == [a.clone(), b.clone()].concat() || data == [b, a].concat(), "appends interleaved");
        assert_eq!(uploads.get(id).await.unwrap().offset, 16_000);
    }

    #[tokio::test]
    async fn unreadable_sessions_are_dropped_and_stray_entries_kept_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let uploads = open(&dir).await;
        let corrupt = uploads.create("repo", 1).await.unwrap().id;
        let short = uploads.create("repo", 1).await.unwrap().id;
        uploads.append(short, None, body(b"abc"), LIMIT).await.unwrap();
        drop(uploads);
        std::fs::write(session_dir(&dir, corrupt).join("meta.json"), b"{").unwrap();
        std::fs::write(session_dir(&dir, short).join("data"), b"a").unwrap();
        let stray = dir.path().join("uploads").join("not-a-session");
        std::fs::create_dir(&stray).unwrap();
        let uploads = open(&dir).await;
        for id in [corrupt, short] {
            assert!(uploads.get(id).await.is_err());
            assert!(!session_dir(&dir, id).exists());
        }
        assert!(stray.exists(), "paths are only built from parsed ids");
    }

    proptest::proptest! {
        #[test]
        fn an_origin_tagged_id_names_its_origin_and_round_trips(origin in 0..=MAX_UPLOAD_ORIGIN) {
            let id = UploadId::with_origin(origin);
            proptest::prop_assert_eq!(id.origin(), Some(origin));
            proptest::prop_assert_eq!(id.to_string().parse::<UploadId>(), Ok(id));
            proptest::prop_assert_ne!(id, UploadId::with_origin(origin), "ids stay random");
        }

        #[test]
        fn any_parsed_id_has_an_origin_only_when_it_is_v8(bytes in proptest::array::uniform16(proptest::num::u8::ANY)) {
            let id = UploadId(uuid::Uuid::from_bytes(bytes));
            proptest::prop_assert_eq!(id.origin().is_some(), id.0.get_version_num() == 8);
        }
    }

    #[tokio::test]
    async fn sessions_of_an_origin_carry_it_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let uploads = open(&dir).await.with_origin(7);
        let id = uploads.create("team/app", 1).await.unwrap().id;
        assert_eq!(id.origin(), Some(7));
        assert_eq!(UploadId::random().origin(), None);
        drop(uploads);
        let reopened = open(&dir).await;
        assert_eq!(reopened.get(id).await.unwrap().id, id);
    }

    #[test]
    fn upload_ids_parse_only_their_display_form() {
        let id = UploadId::random();
        assert_eq!(id.to_string().parse::<UploadId>(), Ok(id));
        let text = id.to_string();
        let other_forms = [
            text.to_uppercase(),
            text.replace('-', ""),
            format!("{{{text}}}"),
            format!("urn:uuid:{text}"),
            format!("{text}/.."),
            String::new(),
            "not-a-uuid".to_owned(),
        ];
        for form in other_forms {
            assert_eq!(form.parse::<UploadId>(), Err(InvalidUploadId), "{form}");
        }
    }
}
