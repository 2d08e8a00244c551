//! The content-addressed blob store interface.
//!
//! Content addressing is done once, here and in [`crate::upload`]: every
//! implementation verifies digests while streaming and never exposes a
//! half-written blob. The filesystem store ([`crate::fs`]) only moves bytes; the
//! in-memory store ([`crate::memory`]) is the second implementation run through
//! the shared suite ([`crate::test_suite`]); the replicated store of a cluster is
//! one more implementation.

use std::path::Path;
use std::pin::Pin;

use bytes::Bytes;
use futures::{Stream, StreamExt};

use crate::file_stream::FileRegion;
use crate::{ByteRange, Digest};

/// Bytes per chunk when a blob or a file is streamed out: large enough to keep
/// syscalls and wakeups rare, small enough that a read never holds much memory.
pub const STREAM_CHUNK_BYTES: usize = 256 * 1024;

/// A stream of blob bytes.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// Why a blob or upload operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The blob or upload session is absent.
    #[error("blob or upload not found")]
    NotFound,
    /// The content does not hash to the digest it was stored under.
    #[error("content hashes to {actual}, expected {expected}")]
    DigestMismatch { expected: Digest, actual: Digest },
    /// The content does not have the announced size.
    #[error("size is {actual}, expected {expected}")]
    SizeMismatch { expected: u64, actual: u64 },
    /// The body exceeded the caller's limit.
    #[error("larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// The range starts at or past the end of the blob.
    #[error("range not satisfiable for a blob of {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    /// An upload chunk did not start at the session's offset.
    #[error("chunk does not start at the upload's offset {current}")]
    UploadOffsetMismatch { current: u64 },
    /// Too few of the nodes that hold or must hold the blob answered (a
    /// replicated store during a failure); retry later.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The disk, or the body stream, failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// The coarse class of an error, which the HTTP and gRPC edges map from; the
/// replicated model's refusals carry one too, so every surface maps a kind to
/// its status once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    InvalidArgument,
    /// A condition the request stated (a version, a checksum, a state) does not hold.
    PreconditionFailed,
    /// The caller is known but may not do this.
    Forbidden,
    Conflict,
    Unavailable,
    Timeout,
    Internal,
}

impl BlobError {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            BlobError::NotFound => ErrorKind::NotFound,
            BlobError::DigestMismatch { .. }
            | BlobError::SizeMismatch { .. }
            | BlobError::TooLarge { .. }
            | BlobError::RangeNotSatisfiable { .. } => ErrorKind::InvalidArgument,
            BlobError::UploadOffsetMismatch { .. } => ErrorKind::Conflict,
            BlobError::Unavailable(_) => ErrorKind::Unavailable,
            BlobError::Io(error) if error.kind() == std::io::ErrorKind::TimedOut => ErrorKind::Timeout,
            BlobError::Io(_) => ErrorKind::Internal,
        }
    }
}

/// A store of immutable blobs addressed by digest.
#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Size of the stored blob, `None` if absent.
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, BlobError>;

    /// Streams the blob, or the inclusive `range` of it (an end past the blob is
    /// cut at its last byte). `NotFound` if absent; `RangeNotSatisfiable` if
    /// `range.start >= size`.
    async fn read(&self, digest: &Digest, range: Option<ByteRange>) -> Result<ByteStream, BlobError>;

    /// The local file holding the blob, or the inclusive `range` of it, for a
    /// server that can send file bytes itself (`sendfile`); `None` when this
    /// store has no local file for it (absent here, or not file-backed), and
    /// the caller then uses [`BlobStore::read`]. `RangeNotSatisfiable` as for
    /// `read`.
    async fn open_region(&self, _digest: &Digest, _range: Option<ByteRange>) -> Result<Option<FileRegion>, BlobError> {
        Ok(None)
    }

    /// Stores `body`, verifying while streaming (never buffering it whole) that
    /// it hashes to `expected`; returns its size. Storing a present blob again
    /// succeeds and still verifies. Nothing half-written is ever visible.
    async fn put(&self, expected: &Digest, body: ByteStream) -> Result<u64, BlobError>;

    /// Adopts a complete file already verified to hash to `digest`, such as an
    /// upload session's data file; afterwards the caller must not use `path`.
    /// This default streams the file into [`BlobStore::put`], which verifies again.
    async fn put_file(&self, digest: &Digest, path: &Path) -> Result<u64, BlobError> {
        let file = tokio::fs::File::open(path).await?;
        self.put(digest, stream_reader(file)).await
    }

    /// Deletes the local copy; `Ok(false)` if it was absent.
    async fn delete(&self, digest: &Digest) -> Result<bool, BlobError>;

    /// Every stored blob with its size (for scrub, GC and repair), in digest order.
    async fn list(&self) -> Result<Vec<(Digest, u64)>, BlobError>;
}

/// Streams any reader in chunks of [`STREAM_CHUNK_BYTES`].
pub fn stream_reader(reader: impl tokio::io::AsyncRead + Send + 'static) -> ByteStream {
    Box::pin(tokio_util::io::ReaderStream::with_capacity(reader, STREAM_CHUNK_BYTES))
}

/// Collects a stream into memory; for tests and small bodies only.
pub async fn collect(mut stream: ByteStream) -> Result<Vec<u8>, BlobError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk?);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_shared_vocabulary() {
        assert_eq!(BlobError::NotFound.kind(), ErrorKind::NotFound);
        assert_eq!(BlobError::UploadOffsetMismatch { current: 3 }.kind(), ErrorKind::Conflict);
        assert_eq!(BlobError::TooLarge { limit: 1 }.kind(), ErrorKind::InvalidArgument);
        assert_eq!(BlobError::Io(std::io::Error::other("disk")).kind(), ErrorKind::Internal);
    }
}
