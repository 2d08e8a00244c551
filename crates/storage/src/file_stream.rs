//! Streaming a stored file out with one copy per byte, or none.
//!
//! `tokio::fs::File` reads into a buffer of its own on the blocking pool and
//! then copies into the caller's, so a blob served through it is copied twice
//! before the socket copies it a third time. [`stream_file`] reads each chunk
//! with one positioned read (`pread`) on the blocking pool straight into the
//! buffer that is then handed on as [`Bytes`]: page cache → buffer → socket.
//!
//! A server that owns its sockets can do better with a [`FileRegion`]: it asks
//! [`is_cached`] whether a chunk's pages are in memory and, if they are, sends
//! them with [`send_to_socket`] (`sendfile(2)`: page cache → socket, no copy
//! in user space and no trip to the blocking pool); a chunk that must come
//! from the disk is still read with [`read_chunk`] on the blocking pool, so a
//! cold read never stalls an async worker.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::blob_store::ByteStream;

/// Bytes per positioned read.
pub const FILE_CHUNK_BYTES: usize = 1024 * 1024;

/// Opens the file at `path` for [`stream_file`] and reads its size, both on
/// the blocking pool.
pub async fn open_with_size(path: PathBuf) -> io::Result<(std::fs::File, u64)> {
    tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(path)?;
        let size = file.metadata()?.len();
        Ok((file, size))
    })
    .await
    .map_err(io::Error::other)?
}

/// Bytes `start..end` of an open stored file.
#[derive(Debug)]
pub struct FileRegion {
    pub file: std::fs::File,
    pub start: u64,
    pub end: u64,
}

impl FileRegion {
    /// The region's bytes as a stream read through the blocking pool.
    pub fn into_stream(self) -> ByteStream {
        stream_file(self.file, self.start, self.end)
    }
}

/// Streams bytes `start..end` of `file` in chunks of at most
/// [`FILE_CHUNK_BYTES`]. A file that ends before `end` (it shrank) ends the
/// stream with `UnexpectedEof` rather than short.
pub fn stream_file(file: std::fs::File, start: u64, end: u64) -> ByteStream {
    let state = (Arc::new(file), start);
    Box::pin(futures::stream::try_unfold(state, move |(file, position)| async move {
        if position >= end {
            return Ok(None);
        }
        let want = usize::try_from(end - position).unwrap_or(usize::MAX).min(FILE_CHUNK_BYTES);
        let reader = file.clone();
        let chunk = tokio::task::spawn_blocking(move || read_chunk(&reader, position, want))
            .await
            .map_err(io::Error::other)??;
        if chunk.is_empty() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the file ended early"));
        }
        let next = position + chunk.len() as u64;
        Ok(Some((chunk, (file, next))))
    }))
}

/// Up to `want` bytes at `offset`; fewer only at the end of the file.
/// Blocking: call it on the blocking pool.
pub fn read_chunk(file: &std::fs::File, offset: u64, want: usize) -> io::Result<Bytes> {
    let mut buffer = BytesMut::with_capacity(want);
    while buffer.len() < want {
        let (at, limit) = (offset + buffer.len() as u64, want - buffer.len());
        let read = read_at_into_spare(file, at, &mut buffer, limit)?;
        if read == 0 {
            break;
        }
    }
    Ok(buffer.freeze())
}

/// One `pread` of at most `limit` bytes into `buffer`'s spare capacity, which
/// is never zeroed first (a 1 MiB memset per chunk would cost as much as the read).
#[cfg(unix)]
fn read_at_into_spare(file: &std::fs::File, offset: u64, buffer: &mut BytesMut, limit: usize) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let spare = buffer.spare_capacity_mut();
    let limit = limit.min(spare.len());
    let offset = libc::off_t::try_from(offset).map_err(|_| io::Error::other("offset beyond off_t"))?;
    loop {
        // SAFETY: `spare` is writable memory of at least `limit` bytes that
        // `buffer` owns and that nothing else borrows during the call; pread
        // writes at most `limit` bytes into it and reports how many.
        let read = unsafe { libc::pread(file.as_raw_fd(), spare.as_mut_ptr().cast(), limit, offset) };
        if read < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        let read = read as usize;
        // SAFETY: pread initialized exactly `read` bytes after the current length.
        unsafe { buffer.set_len(buffer.len() + read) };
        return Ok(read);
    }
}

#[cfg(not(unix))]
fn read_at_into_spare(file: &std::fs::File, offset: u64, buffer: &mut BytesMut, limit: usize) -> io::Result<usize> {
    use std::io::{Read, Seek};
    let mut chunk = vec![0; limit];
    let mut file = file;
    file.seek(io::SeekFrom::Start(offset))?;
    let read = file.read(&mut chunk)?;
    buffer.extend_from_slice(&chunk[..read]);
    Ok(read)
}

/// Whether every page of bytes `offset..offset + len` of `file` is in the page
/// cache, so that reading them cannot wait for the disk. `None` when the
/// kernel cannot tell: `cachestat(2)` is Linux 6.5+, and a container's seccomp
/// profile may refuse it; after the first such answer it is not asked again.
pub fn is_cached(file: &std::fs::File, offset: u64, len: u64) -> Option<bool> {
    static SUPPORT: AtomicU8 = AtomicU8::new(CACHESTAT_UNKNOWN);
    if len == 0 {
        return Some(true);
    }
    if SUPPORT.load(Ordering::Relaxed) == CACHESTAT_UNSUPPORTED {
        return None;
    }
    match cached_pages(file, offset, len) {
        Ok((cached, pages)) => {
            SUPPORT.store(CACHESTAT_SUPPORTED, Ordering::Relaxed);
            Some(cached >= pages)
        }
        Err(error) => {
            if SUPPORT.swap(CACHESTAT_UNSUPPORTED, Ordering::Relaxed) == CACHESTAT_UNKNOWN {
                tracing::info!(%error, "cachestat(2) is unavailable; stored files are served through read buffers");
            }
            None
        }
    }
}

const CACHESTAT_UNKNOWN: u8 = 0;
const CACHESTAT_SUPPORTED: u8 = 1;
const CACHESTAT_UNSUPPORTED: u8 = 2;

/// Pages of the range in the page cache, and pages the range spans.
#[cfg(target_os = "linux")]
fn cached_pages(file: &std::fs::File, offset: u64, len: u64) -> io::Result<(u64, u64)> {
    use std::os::fd::AsRawFd;
    // The same number on every architecture: it is newer than the unified table (Linux 6.5).
    const SYS_CACHESTAT: libc::c_long = 451;
    #[repr(C)]
    struct Range {
        off: u64,
        len: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct Stat {
        nr_cache: u64,
        nr_dirty: u64,
        nr_writeback: u64,
        nr_evicted: u64,
        nr_recently_evicted: u64,
    }
    let range = Range { off: offset, len };
    let mut stat = Stat::default();
    // SAFETY: cachestat reads `range` and writes one `struct cachestat`, both
    // laid out as the kernel's uapi declares them and alive for the call.
    let result =
        unsafe { libc::syscall(SYS_CACHESTAT, file.as_raw_fd(), &range as *const Range, &mut stat as *mut Stat, 0u32) };
    if result < 0 {
        return Err(io::Error::last_os_error());
    }
    let page = page_size();
    let pages = (offset + len).div_ceil(page) - offset / page;
    Ok((stat.nr_cache, pages))
}

#[cfg(not(target_os = "linux"))]
fn cached_pages(_file: &std::fs::File, _offset: u64, _len: u64) -> io::Result<(u64, u64)> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

#[cfg(target_os = "linux")]
fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|size| *size > 0).unwrap_or(4096)
}

/// Sends up to `len` bytes of `file` at `offset` to the socket `socket` with
/// `sendfile(2)` and returns how many went; 0 only when the file ends before
/// `offset`. Waits or answers `WouldBlock` as the socket does; reads that miss
/// the page cache wait for the disk, so ask [`is_cached`] first on a thread
/// that must not block.
#[cfg(target_os = "linux")]
pub fn send_to_socket(
    socket: std::os::fd::BorrowedFd<'_>,
    file: &std::fs::File,
    offset: u64,
    len: usize,
) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let mut position = libc::off_t::try_from(offset).map_err(|_| io::Error::other("offset beyond off_t"))?;
    loop {
        // SAFETY: both descriptors are open for the call; `position` is a
        // valid off_t the kernel reads and advances.
        let sent = unsafe { libc::sendfile(socket.as_raw_fd(), file.as_raw_fd(), &mut position, len) };
        if sent >= 0 {
            return Ok(sent as usize);
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub fn send_to_socket(
    _socket: std::os::fd::BorrowedFd<'_>,
    _file: &std::fs::File,
    _offset: u64,
    _len: usize,
) -> io::Result<usize> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use proptest::prelude::*;

    use super::*;

    fn file_with(bytes: &[u8]) -> (tempfile::TempDir, std::fs::File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        std::fs::write(&path, bytes).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        (dir, file)
    }

    async fn collect(mut stream: ByteStream) -> io::Result<(Vec<u8>, usize)> {
        let (mut bytes, mut chunks) = (Vec::new(), 0);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            assert!(chunk.len() <= FILE_CHUNK_BYTES && !chunk.is_empty());
            bytes.extend_from_slice(&chunk);
            chunks += 1;
        }
        Ok((bytes, chunks))
    }

    #[tokio::test]
    async fn a_file_of_several_chunks_comes_out_whole_and_in_order() {
        let content: Vec<u8> = (0..FILE_CHUNK_BYTES * 2 + 12_345).map(|i| (i % 253) as u8).collect();
        let (_dir, file) = file_with(&content);
        let (bytes, chunks) = collect(stream_file(file, 0, content.len() as u64)).await.unwrap();
        assert_eq!(chunks, 3);
        assert!(bytes == content, "the streamed bytes differ from the file");
    }

    #[tokio::test]
    async fn a_file_shorter_than_asked_is_an_error_not_a_short_stream() {
        let (_dir, file) = file_with(b"only ten b");
        let error = collect(stream_file(file, 0, 11)).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn any_range_streams_exactly_those_bytes(len in 0usize..300_000, a in 0usize..300_000, b in 0usize..300_000) {
            let content: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
            let (start, end) = (a.min(b).min(len), a.max(b).min(len));
            let (_dir, file) = file_with(&content);
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let (bytes, _) = runtime.block_on(collect(stream_file(file, start as u64, end as u64))).unwrap();
            prop_assert!(bytes[..] == content[start..end]);
        }
    }
}
