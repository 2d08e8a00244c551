//! An in-memory blob store with the same semantics as the filesystem store:
//! the second implementation of the shared suite, and a store for tests.
//!
//! Bodies are hashed while they stream in and become visible only once
//! verified, exactly like the filesystem store; they are necessarily held in
//! memory, so this store is not meant for large production data.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use parking_lot::Mutex;

use crate::blob_store::{BlobError, BlobStore, ByteStream, STREAM_CHUNK_BYTES};
use crate::{ByteRange, Digest, Hasher};

/// Blobs in an ordered map, so listing is in digest order.
#[derive(Default)]
pub struct MemoryBlobStore {
    blobs: Mutex<BTreeMap<Digest, Bytes>>,
}

impl MemoryBlobStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Streams `bytes` as zero-copy slices of at most [`STREAM_CHUNK_BYTES`], like a file read.
fn chunked(bytes: Bytes) -> ByteStream {
    let chunk_count = bytes.len().div_ceil(STREAM_CHUNK_BYTES);
    let chunks = (0..chunk_count).map(move |index| {
        let start = index * STREAM_CHUNK_BYTES;
        Ok(bytes.slice(start..bytes.len().min(start + STREAM_CHUNK_BYTES)))
    });
    Box::pin(futures::stream::iter(chunks))
}

#[async_trait::async_trait]
impl BlobStore for MemoryBlobStore {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, BlobError> {
        Ok(self.blobs.lock().get(digest).map(|blob| blob.len() as u64))
    }

    async fn read(&self, digest: &Digest, range: Option<ByteRange>) -> Result<ByteStream, BlobError> {
        let blob = self.blobs.lock().get(digest).cloned().ok_or(BlobError::NotFound)?;
        let size = blob.len() as u64;
        let bytes = match range {
            None => blob,
            Some(range) if range.start >= size => return Err(BlobError::RangeNotSatisfiable { size }),
            Some(range) => blob.slice(range.start as usize..=range.end.min(size - 1) as usize),
        };
        Ok(chunked(bytes))
    }

    async fn put(&self, expected: &Digest, mut body: ByteStream) -> Result<u64, BlobError> {
        let mut hasher = Hasher::new(expected.algorithm());
        let mut data = BytesMut::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            hasher.update(&chunk);
            data.extend_from_slice(&chunk);
        }
        let actual = hasher.finish();
        if &actual != expected {
            return Err(BlobError::DigestMismatch { expected: expected.clone(), actual });
        }
        let size = data.len() as u64;
        self.blobs.lock().insert(expected.clone(), data.freeze());
        Ok(size)
    }

    async fn delete(&self, digest: &Digest) -> Result<bool, BlobError> {
        Ok(self.blobs.lock().remove(digest).is_some())
    }

    async fn list(&self) -> Result<Vec<(Digest, u64)>, BlobError> {
        Ok(self.blobs.lock().iter().map(|(digest, blob)| (digest.clone(), blob.len() as u64)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passes_the_blob_store_suite() {
        crate::test_suite::run_blob_store_suite(&MemoryBlobStore::new()).await;
    }
}
