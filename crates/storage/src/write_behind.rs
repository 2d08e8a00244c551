//! Writing a blob file so that its closing fsync finds little left to do.
//!
//! Left alone, the kernel starts writing a file's dirty pages back only when they
//! age (30 s) or pass the dirty threshold (10 % of memory: gigabytes on a
//! server), so a blob received at network speed waits in the page cache and the
//! disk idles until the closing fsync writes all of it at once: receiving and
//! writing take turns instead of overlapping. [`WriteBehindFile`] asks the kernel
//! to start writing each [`WRITE_BEHIND_BYTES`] window back as soon as it is
//! written (Linux `sync_file_range(SYNC_FILE_RANGE_WRITE)`, which queues the pages
//! without waiting for them), so the disk works while the rest of the body
//! arrives and the fsync waits only for the last window.
//!
//! Durability is unchanged: nothing is acknowledged before that fsync, which the
//! caller still makes. The pages stay cached, so a pull right after a push is
//! still served from memory. Elsewhere than Linux the hint is skipped.

use std::io;
use std::sync::Arc;

use tokio::io::{AsyncWriteExt, BufWriter};

/// Write buffer in front of a blob file: gathers small network chunks so each
/// trip to the blocking pool writes a useful amount.
const WRITE_BUFFER_BYTES: usize = 256 * 1024;
/// Bytes written before their write-back is started.
pub const WRITE_BEHIND_BYTES: u64 = 8 * 1024 * 1024;

/// A blob file being written from some offset on, with write-behind.
pub struct WriteBehindFile {
    writer: BufWriter<tokio::fs::File>,
    /// A second handle on the same open file, lent to the blocking pool for the
    /// write-back requests (the first one is inside `writer`).
    handle: Arc<std::fs::File>,
    /// Where the next write lands.
    position: u64,
    /// Up to where write-back has been started.
    written_back: u64,
}

impl WriteBehindFile {
    /// Writes into `file` from `position` on (the file must already be positioned there).
    pub async fn new(file: tokio::fs::File, position: u64) -> io::Result<Self> {
        let handle = Arc::new(file.try_clone().await?.into_std().await);
        Ok(WriteBehindFile {
            writer: BufWriter::with_capacity(WRITE_BUFFER_BYTES, file),
            handle,
            position,
            written_back: position,
        })
    }

    pub async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes).await?;
        self.position += bytes.len() as u64;
        if self.position - self.written_back >= WRITE_BEHIND_BYTES {
            // The window must be in the page cache, not in a buffer, before its
            // write-back can start.
            self.writer.flush().await?;
            let (offset, length) = (self.written_back, self.position - self.written_back);
            let handle = self.handle.clone();
            // May block while the device's queue is full: back-pressure from the disk.
            tokio::task::spawn_blocking(move || start_write_back(&handle, offset, length))
                .await
                .map_err(io::Error::other)?;
            self.written_back = self.position;
        }
        Ok(())
    }

    /// Flushes and fsyncs the data (and the size), not every other attribute.
    pub async fn sync_data(mut self) -> io::Result<()> {
        // `flush` also reports errors of writes still in flight, which a sync would not.
        self.writer.flush().await?;
        self.writer.get_ref().sync_data().await
    }

    /// Flushes and fsyncs the data and all metadata.
    pub async fn sync_all(mut self) -> io::Result<()> {
        self.writer.flush().await?;
        self.writer.get_ref().sync_all().await
    }
}

/// Queues `length` bytes from `offset` for write-back without waiting for them.
/// Only a hint: a failure here shows up, if it matters, in the closing fsync.
#[cfg(target_os = "linux")]
fn start_write_back(file: &std::fs::File, offset: u64, length: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(length)) = (i64::try_from(offset), i64::try_from(length)) else {
        return;
    };
    // SAFETY: the descriptor belongs to `file`, which the caller keeps open for
    // the whole call; sync_file_range reads no memory of ours.
    let result = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, length, libc::SYNC_FILE_RANGE_WRITE) };
    if result != 0 {
        tracing::debug!(error = %io::Error::last_os_error(), "sync_file_range failed; the fsync will do all the writing");
    }
}

#[cfg(not(target_os = "linux"))]
fn start_write_back(_file: &std::fs::File, _offset: u64, _length: u64) {}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncSeekExt;

    use super::*;

    #[tokio::test]
    async fn what_is_written_across_many_windows_is_what_the_file_holds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let prefix = b"kept prefix";
        tokio::fs::write(&path, prefix).await.unwrap();
        let mut file = tokio::fs::OpenOptions::new().write(true).open(&path).await.unwrap();
        file.seek(io::SeekFrom::Start(prefix.len() as u64)).await.unwrap();
        let mut writer = WriteBehindFile::new(file, prefix.len() as u64).await.unwrap();
        // Odd-sized chunks, so window edges fall inside chunks; 2.5 windows in all.
        let total = (WRITE_BEHIND_BYTES * 5 / 2) as usize;
        let expected: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
        for chunk in expected.chunks(1_000_003) {
            writer.write(chunk).await.unwrap();
        }
        // Write-back was started twice, and what is left is less than a window.
        assert!(writer.written_back >= prefix.len() as u64 + 2 * WRITE_BEHIND_BYTES);
        assert!(writer.position - writer.written_back < WRITE_BEHIND_BYTES);
        writer.sync_data().await.unwrap();
        let stored = tokio::fs::read(&path).await.unwrap();
        assert_eq!(&stored[..prefix.len()], prefix);
        assert!(stored[prefix.len()..] == expected[..], "the bytes after the prefix differ");
    }
}
