//! Snapshot files: the record format and the directory that holds them.
//!
//! ```text
//!   <snapshot_dir>/snapshot-<seq>.snap   complete snapshots; one is current
//!                 building-<seq>.tmp     being built; removed at open
//!                 incoming-<seq>.tmp     being received; removed at open
//! ```
//! `seq` is a local counter; the snapshot's own id and metadata live in the
//! file's header, so a file is self-describing and verified before install.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, MutexGuard};

use crate::types::{LogId, SnapshotMeta};
use flotilla_model::store::tables as table;

const MAGIC: &[u8; 8] = b"FLOSNAP1";
/// Length value that ends the records; a record count follows.
const END_OF_RECORDS: u32 = u32::MAX;
/// Largest header or key or value accepted when reading: far above any real
/// record, it only stops a corrupt length from allocating gigabytes.
const MAX_PART_BYTES: u32 = 256 << 20;
const SNAPSHOT_PREFIX: &str = "snapshot-";
const SNAPSHOT_SUFFIX: &str = ".snap";
const TEMP_SUFFIX: &str = ".tmp";

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

fn write_part(writer: &mut impl Write, part: &[u8]) -> io::Result<()> {
    let len = u32::try_from(part.len()).ok().filter(|len| *len < END_OF_RECORDS).ok_or_else(|| invalid("too long"))?;
    writer.write_all(&len.to_be_bytes())?;
    writer.write_all(part)
}

fn read_u32(reader: &mut impl Read) -> io::Result<u32> {
    let mut bytes = [0u8; 4];
    reader.read_exact(&mut bytes)?;
    Ok(u32::from_be_bytes(bytes))
}

fn read_part(reader: &mut impl Read, len: u32) -> io::Result<Vec<u8>> {
    if len > MAX_PART_BYTES {
        return Err(invalid(format!("record part of {len} bytes")));
    }
    let mut part = vec![0u8; len as usize];
    reader.read_exact(&mut part)?;
    Ok(part)
}

/// Writes a snapshot file: header, records, trailer.
pub(super) struct RecordWriter {
    writer: BufWriter<File>,
    records: u64,
}

impl RecordWriter {
    pub(super) fn create(path: &Path, meta: &SnapshotMeta) -> io::Result<Self> {
        let mut writer = BufWriter::new(File::create(path)?);
        writer.write_all(MAGIC)?;
        write_part(&mut writer, &serde_json::to_vec(meta)?)?;
        Ok(RecordWriter { writer, records: 0 })
    }

    pub(super) fn write_record(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        write_part(&mut self.writer, key)?;
        write_part(&mut self.writer, value)?;
        self.records += 1;
        Ok(())
    }

    /// Writes the trailer and syncs the file.
    pub(super) fn finish(mut self) -> io::Result<()> {
        self.writer.write_all(&END_OF_RECORDS.to_be_bytes())?;
        self.writer.write_all(&self.records.to_be_bytes())?;
        self.writer.into_inner().map_err(|error| error.into_error())?.sync_all()
    }
}

/// Reads a snapshot file, checking its framing, record count and end.
pub(super) struct RecordReader {
    reader: BufReader<File>,
    meta: SnapshotMeta,
    records: u64,
}

impl RecordReader {
    pub(super) fn open(path: &Path) -> io::Result<Self> {
        let mut reader = BufReader::new(File::open(path)?);
        let mut magic = [0u8; 8];
        reader.read_exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(invalid("not a flotilla snapshot file"));
        }
        let len = read_u32(&mut reader)?;
        let meta = serde_json::from_slice(&read_part(&mut reader, len)?)?;
        Ok(RecordReader { reader, meta, records: 0 })
    }

    pub(super) fn meta(&self) -> &SnapshotMeta {
        &self.meta
    }

    /// The next key/value, or `None` after a valid trailer.
    pub(super) fn next_record(&mut self) -> io::Result<Option<(Vec<u8>, Vec<u8>)>> {
        let len = read_u32(&mut self.reader)?;
        if len == END_OF_RECORDS {
            let mut count = [0u8; 8];
            self.reader.read_exact(&mut count)?;
            if u64::from_be_bytes(count) != self.records {
                return Err(invalid("record count does not match the trailer"));
            }
            if self.reader.read(&mut [0u8; 1])? != 0 {
                return Err(invalid("bytes after the trailer"));
            }
            return Ok(None);
        }
        let key = read_part(&mut self.reader, len)?;
        if key.first().is_none_or(|table_byte| *table_byte == table::APPLIED) {
            return Err(invalid("record in the reserved table"));
        }
        let len = read_u32(&mut self.reader)?;
        let value = read_part(&mut self.reader, len)?;
        self.records += 1;
        Ok(Some((key, value)))
    }

    /// Reads every record: the file is complete and well formed.
    fn verify(mut self) -> io::Result<()> {
        while self.next_record()?.is_some() {}
        Ok(())
    }
}

/// The snapshot directory: which file is current, and names for new ones.
pub(super) struct SnapshotFiles {
    dir: PathBuf,
    next_seq: AtomicU64,
    current: Mutex<Option<(SnapshotMeta, PathBuf)>>,
    /// Held by an install for its whole run, and by a build while it takes its
    /// point-in-time view, so a build never sees a half-installed state.
    state_lock: Mutex<()>,
}

fn seq_of(name: &str) -> Option<u64> {
    name.strip_prefix(SNAPSHOT_PREFIX)?.strip_suffix(SNAPSHOT_SUFFIX)?.parse().ok()
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl SnapshotFiles {
    /// Scans `dir`: removes temporaries and snapshots newer than the applied
    /// state (built from writes a crash lost) and keeps the newest other one.
    pub(super) fn open(dir: PathBuf, last_applied: Option<LogId>) -> io::Result<Self> {
        let mut found = Vec::new();
        let mut max_seq = 0;
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
            let Some(seq) = seq_of(&name) else {
                if name.ends_with(TEMP_SUFFIX) {
                    std::fs::remove_file(&path)?;
                }
                continue;
            };
            max_seq = max_seq.max(seq);
            match RecordReader::open(&path) {
                Ok(reader) if reader.meta.last_log_id <= last_applied => found.push((reader.meta, seq, path)),
                Ok(_) => std::fs::remove_file(&path)?,
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "removing unreadable snapshot");
                    std::fs::remove_file(&path)?;
                }
            }
        }
        found.sort_by(|(a, a_seq, _), (b, b_seq, _)| (a.last_log_id, a_seq).cmp(&(b.last_log_id, b_seq)));
        let current = found.pop().map(|(meta, _, path)| (meta, path));
        for (_, _, stale) in found {
            std::fs::remove_file(stale)?;
        }
        Ok(SnapshotFiles {
            dir,
            next_seq: AtomicU64::new(max_seq + 1),
            current: Mutex::new(current),
            state_lock: Mutex::new(()),
        })
    }

    fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Excludes builds from taking a view (see `state_lock`).
    pub(super) fn lock_state(&self) -> MutexGuard<'_, ()> {
        self.state_lock.lock()
    }

    /// A fresh temporary file name; `kind` says what it is for.
    pub(super) fn temp_path(&self, kind: &str) -> PathBuf {
        self.dir.join(format!("{kind}-{}{TEMP_SUFFIX}", self.next_seq()))
    }

    /// A snapshot id: the last log id it covers, and a counter.
    pub(super) fn new_snapshot_id(&self, last: Option<LogId>) -> String {
        let seq = self.next_seq();
        match last {
            Some(id) => format!("{}-{}-{}-{seq}", id.leader_id.term, id.leader_id.node_id, id.index),
            None => format!("empty-{seq}"),
        }
    }

    /// Renames a complete, synced temporary file into place as a snapshot file.
    pub(super) fn place(&self, temp: &Path) -> io::Result<PathBuf> {
        let path = self.dir.join(format!("{SNAPSHOT_PREFIX}{:020}{SNAPSHOT_SUFFIX}", self.next_seq()));
        std::fs::rename(temp, &path)?;
        sync_dir(&self.dir)?;
        Ok(path)
    }

    /// Syncs, verifies against `meta` and places a received snapshot. `received`
    /// is normally our `incoming` file; anything else is copied first.
    pub(super) fn place_received(
        &self,
        received: File,
        incoming: Option<&Path>,
        meta: &SnapshotMeta,
    ) -> io::Result<PathBuf> {
        received.sync_all()?;
        let temp = match incoming {
            Some(incoming) if is_same_file(&received, incoming)? => incoming.to_path_buf(),
            _ => {
                let temp = self.temp_path("incoming");
                copy_file(received, &temp)?;
                if let Some(incoming) = incoming {
                    std::fs::remove_file(incoming)?;
                }
                temp
            }
        };
        let verified = RecordReader::open(&temp).and_then(|reader| match reader.meta() == meta {
            true => reader.verify(),
            false => Err(invalid(format!("snapshot file holds {:?}, expected {meta:?}", reader.meta()))),
        });
        if let Err(error) = verified {
            std::fs::remove_file(&temp)?;
            return Err(error);
        }
        self.place(&temp)
    }

    /// Makes the snapshot at `path` current unless a newer one already is (a
    /// build racing an install: the stale file is removed, open handles stay
    /// valid), and removes the one it replaces. Returns whether it became current.
    pub(super) fn publish(&self, meta: &SnapshotMeta, path: &Path) -> io::Result<bool> {
        let mut current = self.current.lock();
        if current.as_ref().is_some_and(|(current, _)| current.last_log_id > meta.last_log_id) {
            std::fs::remove_file(path)?;
            return Ok(false);
        }
        let replaced = current.replace((meta.clone(), path.to_path_buf()));
        drop(current);
        if let Some((_, old)) = replaced.filter(|(_, old)| old != path) {
            std::fs::remove_file(old)?;
        }
        Ok(true)
    }

    /// The current snapshot, opened (retrying if it is replaced meanwhile).
    pub(super) fn open_current(&self) -> io::Result<Option<(SnapshotMeta, File)>> {
        loop {
            let Some((meta, path)) = self.current.lock().clone() else { return Ok(None) };
            match File::open(&path) {
                Ok(file) => return Ok(Some((meta, file))),
                Err(error) if error.kind() == io::ErrorKind::NotFound && !self.is_current(&path) => continue,
                Err(error) => return Err(error),
            }
        }
    }

    fn is_current(&self, path: &Path) -> bool {
        self.current.lock().as_ref().is_some_and(|(_, current)| current == path)
    }
}

#[cfg(unix)]
fn is_same_file(file: &File, path: &Path) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let (a, b) = (file.metadata()?, std::fs::metadata(path)?);
    Ok(a.dev() == b.dev() && a.ino() == b.ino())
}

#[cfg(not(unix))]
fn is_same_file(_file: &File, _path: &Path) -> io::Result<bool> {
    Ok(false)
}

/// Rewinds `file` and copies it to a new synced file at `target`.
fn copy_file(mut file: File, target: &Path) -> io::Result<()> {
    file.seek(SeekFrom::Start(0))?;
    let mut writer = BufWriter::new(File::create(target)?);
    io::copy(&mut BufReader::new(file), &mut writer)?;
    writer.into_inner().map_err(|error| error.into_error())?.sync_all()
}
