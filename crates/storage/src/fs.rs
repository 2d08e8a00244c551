//! The filesystem blob store: one file per blob, written crash-safely.
//!
//! ```text
//!   <root>/
//!   ├── blobs/
//!   │   ├── sha256/
//!   │   │   ├── 00/                       fan-out: first two hex characters,
//!   │   │   │   └── 00a1…(64 hex)         created on first use (parent fsynced)
//!   │   │   └── ff/…
//!   │   └── sha512/
//!   │       └── 3c/3c9f…(128 hex)
//!   ├── quarantine/
//!   │   └── <hex>.<unix ms>               a copy scrub found corrupt, kept for a look
//!   └── tmp/
//!       └── <uuid>                        a blob being written; emptied at open
//! ```
//!
//! `tmp/` lives under the same root, hence on the same filesystem, so the final
//! rename is atomic. The write path:
//!
//! ```text
//!   body ──► tmp/<uuid> (hashing, write-behind) ──► digest ok? ──► fsync file ──► rename ──► fsync dir
//!                                                   └─ no: delete temp, DigestMismatch
//! ```
//!
//! After a crash a blob is either complete and correct or absent. File names are
//! only ever built from validated [`Digest`]s and generated UUIDs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use futures::StreamExt;

use crate::blob_store::{stream_reader, BlobError, BlobStore, ByteStream};
use crate::file_stream::{open_with_size, FileRegion};
use crate::write_behind::WriteBehindFile;
use crate::{Algorithm, ByteRange, Digest, Hasher};

/// Hex characters of the digest that name the fan-out directory (256 per algorithm).
const FAN_OUT_HEX_CHARS: usize = 2;
const BLOBS_DIR: &str = "blobs";
const TEMP_DIR: &str = "tmp";
const QUARANTINE_DIR: &str = "quarantine";
/// Bytes read per call when a stored blob is re-hashed.
const VERIFY_CHUNK_BYTES: usize = 1024 * 1024;

/// Stripes of the lock that orders installing a blob against deleting it.
const INSTALL_LOCK_STRIPES: usize = 64;

/// What [`FsBlobStore::delete_if_older`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reclaimed {
    /// The file was removed; it held this many bytes.
    Deleted(u64),
    /// The file was (re)written at or after the cutoff and was kept.
    Recent,
    /// There was no file.
    Absent,
}

/// What [`FsBlobStore::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// The file hashes to its name; it holds this many bytes.
    Intact(u64),
    /// The file's content hashes to something else.
    Corrupt { actual: Digest, size: u64 },
    /// There was no file.
    Absent,
}

/// Blobs as files under a root directory.
pub struct FsBlobStore {
    root: PathBuf,
    /// Per digest stripe: an install (touch, rename) and a conditional delete
    /// (look at the time, unlink) of the same blob never interleave.
    install_locks: Arc<[tokio::sync::Mutex<()>]>,
}

impl FsBlobStore {
    /// Opens (creating) the store at `root` and removes stale temp files.
    pub async fn open(root: PathBuf) -> Result<Self, BlobError> {
        tokio::fs::create_dir_all(root.join(BLOBS_DIR)).await?;
        tokio::fs::create_dir_all(root.join(TEMP_DIR)).await?;
        let install_locks = (0..INSTALL_LOCK_STRIPES).map(|_| tokio::sync::Mutex::new(())).collect();
        let store = FsBlobStore { root, install_locks };
        let removed = store.clear_temp_dir().await?;
        if removed > 0 {
            tracing::info!(removed, root = %store.root.display(), "removed unfinished blob writes");
        }
        Ok(store)
    }

    /// Where a blob's file lives.
    pub fn path_of(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.fan_out_dir(digest).join(hex)
    }

    fn algorithm_dir(&self, algorithm: Algorithm) -> PathBuf {
        self.root.join(BLOBS_DIR).join(algorithm.name())
    }

    fn fan_out_dir(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.algorithm_dir(digest.algorithm()).join(&hex[..FAN_OUT_HEX_CHARS])
    }

    fn new_temp_path(&self) -> PathBuf {
        self.root.join(TEMP_DIR).join(uuid::Uuid::new_v4().to_string())
    }

    async fn clear_temp_dir(&self) -> Result<usize, BlobError> {
        let mut removed = 0;
        let mut entries = tokio::fs::read_dir(self.root.join(TEMP_DIR)).await?;
        while let Some(entry) = entries.next_entry().await? {
            if entry.file_type().await?.is_dir() {
                tokio::fs::remove_dir_all(entry.path()).await?;
            } else {
                tokio::fs::remove_file(entry.path()).await?;
            }
            removed += 1;
        }
        Ok(removed)
    }

    fn install_lock(&self, digest: &Digest) -> &tokio::sync::Mutex<()> {
        &self.install_locks[lock_stripe(digest)]
    }

    /// Renames a complete, synced file into place and makes the rename durable.
    /// Its modification time becomes now: the time the blob was (re)stored, which
    /// [`FsBlobStore::delete_if_older`] goes by.
    async fn install(&self, digest: &Digest, source: &Path) -> Result<(), BlobError> {
        let blobs_dir = self.root.join(BLOBS_DIR);
        let algorithm_dir = self.algorithm_dir(digest.algorithm());
        let fan_out_dir = self.fan_out_dir(digest);
        create_dir_durably(&algorithm_dir, &blobs_dir).await?;
        create_dir_durably(&fan_out_dir, &algorithm_dir).await?;
        let _installing = self.install_lock(digest).lock().await;
        let file = tokio::fs::File::options().write(true).open(source).await?.into_std().await;
        tokio::task::spawn_blocking(move || file.set_modified(SystemTime::now()))
            .await
            .map_err(std::io::Error::other)??;
        tokio::fs::rename(source, self.path_of(digest)).await?;
        sync_dir(&fan_out_dir).await
    }

    /// Deletes the blob's file unless it was stored at or after `cutoff`: garbage
    /// collection uses this so that a copy written by an upload that began after
    /// the collection survives it. Never interleaves with storing the same blob.
    pub async fn delete_if_older(&self, digest: &Digest, cutoff: SystemTime) -> Result<Reclaimed, BlobError> {
        let mut outcome = self.delete_all_if_older(&[(digest.clone(), cutoff)]).await?;
        Ok(outcome.pop().unwrap_or(Reclaimed::Absent))
    }

    /// Re-hashes the stored copy of `digest` (scrub). Runs in the blocking pool.
    pub async fn verify(&self, digest: &Digest) -> Result<Verified, BlobError> {
        let path = self.path_of(digest);
        let algorithm = digest.algorithm();
        let expected = digest.clone();
        tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let Some(mut file) = not_found_as_none(std::fs::File::open(&path))? else {
                return Ok(Verified::Absent);
            };
            let mut hasher = Hasher::new(algorithm);
            let mut buffer = vec![0u8; VERIFY_CHUNK_BYTES];
            let mut size = 0u64;
            loop {
                let read = file.read(&mut buffer)?;
                if read == 0 {
                    break;
                }
                hasher.update(&buffer[..read]);
                size += read as u64;
            }
            let actual = hasher.finish();
            Ok(if actual == expected { Verified::Intact(size) } else { Verified::Corrupt { actual, size } })
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Moves the stored copy of `digest` out of the store into `quarantine/`
    /// (scrub found it corrupt); the store then lacks the blob until a good copy
    /// is put. Returns where the file went, `None` if there was none.
    pub async fn quarantine(&self, digest: &Digest) -> Result<Option<PathBuf>, BlobError> {
        let dir = self.root.join(QUARANTINE_DIR);
        create_dir_durably(&dir, &self.root).await?;
        let millis = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |since| since.as_millis());
        let target = dir.join(format!("{}.{millis}", digest.hex()));
        let _moving = self.install_lock(digest).lock().await;
        match not_found_as_none(tokio::fs::rename(self.path_of(digest), &target).await)? {
            Some(()) => {
                sync_dir(&dir).await?;
                sync_dir(&self.fan_out_dir(digest)).await?;
                Ok(Some(target))
            }
            None => Ok(None),
        }
    }

    /// [`FsBlobStore::delete_if_older`] for many blobs in one trip to the blocking
    /// pool (collections delete thousands at a time); one outcome per blob, in order.
    pub async fn delete_all_if_older(&self, blobs: &[(Digest, SystemTime)]) -> Result<Vec<Reclaimed>, BlobError> {
        let locks = self.install_locks.clone();
        let paths: Vec<(usize, PathBuf, SystemTime)> =
            blobs.iter().map(|(digest, cutoff)| (lock_stripe(digest), self.path_of(digest), *cutoff)).collect();
        tokio::task::spawn_blocking(move || {
            paths
                .into_iter()
                .map(|(stripe, path, cutoff)| {
                    let _deleting = locks[stripe].blocking_lock();
                    delete_file_if_older(&path, cutoff)
                })
                .collect()
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

/// The install-lock stripe of a blob.
fn lock_stripe(digest: &Digest) -> usize {
    digest.hash().first().copied().unwrap_or(0) as usize % INSTALL_LOCK_STRIPES
}

/// Removes the file at `path` unless it was modified at or after `cutoff` (blocking).
fn delete_file_if_older(path: &Path, cutoff: SystemTime) -> Result<Reclaimed, BlobError> {
    let Some(metadata) = not_found_as_none(std::fs::metadata(path))? else {
        return Ok(Reclaimed::Absent);
    };
    if metadata.modified()? >= cutoff {
        return Ok(Reclaimed::Recent);
    }
    match not_found_as_none(std::fs::remove_file(path))? {
        Some(()) => Ok(Reclaimed::Deleted(metadata.len())),
        None => Ok(Reclaimed::Absent),
    }
}

/// Creates `dir` if missing and fsyncs `parent` so the new entry survives a crash.
/// (A concurrent creator that loses the race relies on the winner's fsync.)
async fn create_dir_durably(dir: &Path, parent: &Path) -> Result<(), BlobError> {
    match tokio::fs::create_dir(dir).await {
        Ok(()) => sync_dir(parent).await,
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Fsyncs a directory, making renames and creations inside it durable.
pub(crate) async fn sync_dir(dir: &Path) -> Result<(), BlobError> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all())
        .await
        .map_err(std::io::Error::other)??;
    Ok(())
}

/// Removes a temp file when dropped unless disarmed: covers errors and futures
/// dropped midway (a client that went away).
struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl TempFile {
    fn new(path: PathBuf) -> Self {
        TempFile { path, armed: true }
    }

    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Err(error) = std::fs::remove_file(&self.path) {
            if error.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %self.path.display(), %error, "could not remove a temp blob file");
            }
        }
    }
}

/// Streams `body` into a new file at `path` while hashing; syncs it only if it
/// hashes to `expected`. Returns the size.
async fn write_verified(path: &Path, expected: &Digest, mut body: ByteStream) -> Result<u64, BlobError> {
    let file = tokio::fs::File::create(path).await?;
    let mut writer = WriteBehindFile::new(file, 0).await?;
    let mut hasher = Hasher::new(expected.algorithm());
    let mut size = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        hasher.update(&chunk);
        writer.write(&chunk).await?;
        size += chunk.len() as u64;
    }
    let actual = hasher.finish();
    if &actual != expected {
        return Err(BlobError::DigestMismatch { expected: expected.clone(), actual });
    }
    writer.sync_all().await?;
    Ok(size)
}

fn not_found_as_none<T>(result: std::io::Result<T>) -> Result<Option<T>, BlobError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error.into()),
    }
}

#[async_trait::async_trait]
impl BlobStore for FsBlobStore {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, BlobError> {
        let metadata = not_found_as_none(tokio::fs::metadata(self.path_of(digest)).await)?;
        Ok(metadata.map(|metadata| metadata.len()))
    }

    async fn read(&self, digest: &Digest, range: Option<ByteRange>) -> Result<ByteStream, BlobError> {
        let region = self.open_region(digest, range).await?.ok_or(BlobError::NotFound)?;
        Ok(region.into_stream())
    }

    async fn open_region(&self, digest: &Digest, range: Option<ByteRange>) -> Result<Option<FileRegion>, BlobError> {
        let Some((file, size)) = not_found_as_none(open_with_size(self.path_of(digest)).await)? else {
            return Ok(None);
        };
        let (start, end) = match range {
            None => (0, size),
            Some(range) if range.start >= size => return Err(BlobError::RangeNotSatisfiable { size }),
            Some(range) => (range.start, range.end.min(size - 1) + 1),
        };
        Ok(Some(FileRegion { file, start, end }))
    }

    async fn put(&self, expected: &Digest, body: ByteStream) -> Result<u64, BlobError> {
        let mut temp = TempFile::new(self.new_temp_path());
        let size = write_verified(&temp.path, expected, body).await?;
        self.install(expected, &temp.path).await?;
        temp.disarm();
        Ok(size)
    }

    /// Renames the file into place (no copy); copies through `put` only when it
    /// lives on another filesystem. The file is synced first, which costs nothing
    /// when the caller already did.
    async fn put_file(&self, digest: &Digest, path: &Path) -> Result<u64, BlobError> {
        let file = tokio::fs::File::open(path).await?;
        file.sync_all().await?;
        let size = file.metadata().await?.len();
        match self.install(digest, path).await {
            Ok(()) => Ok(size),
            Err(BlobError::Io(error)) if error.kind() == std::io::ErrorKind::CrossesDevices => {
                let size = self.put(digest, stream_reader(file)).await?;
                tokio::fs::remove_file(path).await?;
                Ok(size)
            }
            Err(error) => Err(error),
        }
    }

    async fn delete(&self, digest: &Digest) -> Result<bool, BlobError> {
        Ok(not_found_as_none(tokio::fs::remove_file(self.path_of(digest)).await)?.is_some())
    }

    async fn list(&self) -> Result<Vec<(Digest, u64)>, BlobError> {
        let dirs = [Algorithm::Sha256, Algorithm::Sha512].map(|algorithm| (algorithm, self.algorithm_dir(algorithm)));
        tokio::task::spawn_blocking(move || list_blobs(&dirs)).await.map_err(std::io::Error::other)?
    }
}

/// Walks the fan-out directories; skips anything that is not a blob file.
fn list_blobs(algorithm_dirs: &[(Algorithm, PathBuf)]) -> Result<Vec<(Digest, u64)>, BlobError> {
    let mut blobs = Vec::new();
    for (algorithm, dir) in algorithm_dirs {
        let Some(fan_outs) = not_found_as_none(std::fs::read_dir(dir))? else { continue };
        for fan_out in fan_outs {
            let fan_out = fan_out?;
            if !fan_out.file_type()?.is_dir() {
                continue;
            }
            for entry in std::fs::read_dir(fan_out.path())? {
                let entry = entry?;
                let Some(hex) = entry.file_name().to_str().map(str::to_owned) else { continue };
                let Ok(digest) = Digest::parse(&format!("{}:{hex}", algorithm.name())) else { continue };
                // A blob deleted while we walk is simply not listed.
                if let Some(metadata) = not_found_as_none(entry.metadata())? {
                    blobs.push((digest, metadata.len()));
                }
            }
        }
    }
    blobs.sort();
    Ok(blobs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_suite;

    fn body_of(data: Vec<u8>) -> ByteStream {
        Box::pin(futures::stream::iter([Ok(bytes::Bytes::from(data))]))
    }

    #[tokio::test]
    async fn passes_the_blob_store_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path().to_owned()).await.unwrap();
        test_suite::run_blob_store_suite(&store).await;
    }

    #[tokio::test]
    async fn a_stored_blob_opens_as_a_region_of_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path().to_owned()).await.unwrap();
        let data = test_suite::pattern(5000, 4);
        let digest = Digest::sha256_of(&data);
        store.put(&digest, body_of(data)).await.unwrap();

        let whole = store.open_region(&digest, None).await.unwrap().expect("a local file");
        let part = store.open_region(&digest, Some(ByteRange { start: 10, end: 99_999 })).await.unwrap().unwrap();

        assert_eq!((whole.start, whole.end), (0, 5000));
        assert_eq!((part.start, part.end), (10, 5000), "the end is cut at the file's end");
    }

    #[tokio::test]
    async fn files_follow_the_documented_layout() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path().to_owned()).await.unwrap();
        let digest = Digest::sha256_of(b"layout");
        store.put(&digest, Box::pin(futures::stream::iter([Ok(bytes::Bytes::from_static(b"layout"))]))).await.unwrap();
        let hex = digest.hex();
        let expected = dir.path().join("blobs").join("sha256").join(&hex[..2]).join(&hex);
        assert_eq!(std::fs::read(expected).unwrap(), b"layout");
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0, "no temp file is left");
    }

    #[tokio::test]
    async fn a_crash_leaves_no_partial_blob_and_stale_temp_files_are_cleaned_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path().to_owned()).await.unwrap();
        // What a crash in the middle of `put` leaves behind: a temp file, no blob.
        let stale = store.new_temp_path();
        std::fs::write(&stale, b"half a blob").unwrap();
        let digest = Digest::sha256_of(b"half a blob, and the rest");
        assert_eq!(store.stat(&digest).await.unwrap(), None);
        assert!(store.list().await.unwrap().is_empty(), "temp files are never listed as blobs");
        drop(store);
        let store = FsBlobStore::open(dir.path().to_owned()).await.unwrap();
        assert!(!stale.exists(), "open removes unfinished writes");
        assert!(store.list().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn verify_finds_a_flipped_byte_and_quarantine_moves_the_copy_aside() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path().to_owned()).await.unwrap();
        let data = b"scrub me".repeat(300_000);
        let digest = Digest::sha256_of(&data);
        store.put(&digest, body_of(data.clone())).await.unwrap();
        assert_eq!(store.verify(&digest).await.unwrap(), Verified::Intact(data.len() as u64));

        let mut flipped = data.clone();
        flipped[1_234_567] ^= 0x01;
        std::fs::write(store.path_of(&digest), &flipped).unwrap();
        let Verified::Corrupt { actual, size } = store.verify(&digest).await.unwrap() else { panic!("not corrupt") };
        assert_eq!((actual, size), (Digest::sha256_of(&flipped), data.len() as u64));

        let moved = store.quarantine(&digest).await.unwrap().expect("moved");
        assert!(moved.starts_with(dir.path().join("quarantine")));
        assert_eq!(std::fs::read(&moved).unwrap(), flipped);
        assert_eq!(store.stat(&digest).await.unwrap(), None);
        assert_eq!(store.verify(&digest).await.unwrap(), Verified::Absent);
        assert_eq!(store.quarantine(&digest).await.unwrap(), None);
        assert!(store.list().await.unwrap().is_empty());

        store.put(&digest, body_of(data.clone())).await.unwrap();
        assert_eq!(store.verify(&digest).await.unwrap(), Verified::Intact(data.len() as u64));
    }

    #[tokio::test]
    async fn a_put_dropped_midway_removes_its_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path().to_owned()).await.unwrap();
        let first = futures::stream::iter([Ok(bytes::Bytes::from_static(b"first chunk"))]);
        let body: ByteStream = Box::pin(first.chain(futures::stream::pending()));
        let digest = Digest::sha256_of(b"never finished");
        let put = store.put(&digest, body);
        let timed_out = tokio::time::timeout(std::time::Duration::from_millis(200), put).await;
        assert!(timed_out.is_err(), "the body never ends");
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        assert_eq!(store.stat(&digest).await.unwrap(), None);
    }

    #[tokio::test]
    async fn delete_if_older_keeps_a_copy_stored_after_the_cutoff() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path().to_path_buf()).await.unwrap();
        let data = b"collect me".to_vec();
        let digest = Digest::sha256_of(&data);
        assert_eq!(store.delete_if_older(&digest, SystemTime::now()).await.unwrap(), Reclaimed::Absent);
        store.put(&digest, body_of(data.clone())).await.unwrap();
        let before = SystemTime::now() - std::time::Duration::from_secs(60);
        assert_eq!(store.delete_if_older(&digest, before).await.unwrap(), Reclaimed::Recent);
        assert!(store.stat(&digest).await.unwrap().is_some());
        let after = SystemTime::now() + std::time::Duration::from_secs(1);
        assert_eq!(store.delete_if_older(&digest, after).await.unwrap(), Reclaimed::Deleted(data.len() as u64));
        assert_eq!(store.stat(&digest).await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_adopted_file_counts_as_stored_when_it_is_adopted() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path().join("store")).await.unwrap();
        let data = b"old upload data".to_vec();
        let digest = Digest::sha256_of(&data);
        let path = dir.path().join("upload");
        std::fs::write(&path, &data).unwrap();
        let long_ago = SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(long_ago).unwrap();
        let adopted_at = SystemTime::now() - std::time::Duration::from_secs(1);
        store.put_file(&digest, &path).await.unwrap();
        assert_eq!(store.delete_if_older(&digest, adopted_at).await.unwrap(), Reclaimed::Recent);
    }

    #[tokio::test]
    async fn stray_files_are_not_listed() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path().to_owned()).await.unwrap();
        std::fs::create_dir_all(dir.path().join("blobs/sha256/ab")).unwrap();
        std::fs::write(dir.path().join("blobs/sha256/ab/not-a-digest"), b"x").unwrap();
        std::fs::write(dir.path().join("blobs/sha256/README"), b"x").unwrap();
        assert!(store.list().await.unwrap().is_empty());
    }
}
