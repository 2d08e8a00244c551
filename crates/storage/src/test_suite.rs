//! The shared test suite every [`BlobStore`] implementation must pass: the
//! filesystem and in-memory stores here, the replicated store in `flotilla-node`.
//!
//! Run it on an empty store: `run_blob_store_suite(&store).await`. Each case
//! removes what it stored, so the listing case can check the exact contents.

use bytes::Bytes;
use futures::StreamExt;

use crate::blob_store::{collect, BlobError, BlobStore, ByteStream};
use crate::{Algorithm, ByteRange, Digest};

/// Size of the large blob, streamed in and out to check memory stays bounded.
const LARGE_BLOB_BYTES: usize = 20 << 20;
/// Chunk size of the large blob's body, like a client's network chunks.
const LARGE_BODY_CHUNK_BYTES: usize = 64 << 10;
/// Largest chunk a read may yield: reads must stream, not load the blob.
const MAX_READ_CHUNK_BYTES: usize = 1 << 20;

/// Runs every case against `store`, which must start empty; panics on failure.
pub async fn run_blob_store_suite(store: &dyn BlobStore) {
    assert!(store.list().await.unwrap().is_empty(), "the suite needs an empty store");
    put_stat_read(store).await;
    ranges(store).await;
    regions_hold_what_reads_stream(store).await;
    mismatch_and_broken_bodies_leave_nothing(store).await;
    idempotent_put_still_verifies(store).await;
    concurrent_puts_of_one_blob(store).await;
    delete(store).await;
    put_file(store).await;
    large_streamed_blob(store).await;
    listing(store).await;
}

/// A body yielding `data` in chunks of `chunk` bytes.
pub fn stream_of(data: &[u8], chunk: usize) -> ByteStream {
    let chunks: Vec<std::io::Result<Bytes>> =
        data.chunks(chunk.max(1)).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    Box::pin(futures::stream::iter(chunks))
}

/// Deterministic, non-repeating-looking test content.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 13) as u8 ^ seed).collect()
}

async fn read_all(store: &dyn BlobStore, digest: &Digest, range: Option<ByteRange>) -> Vec<u8> {
    collect(store.read(digest, range).await.unwrap()).await.unwrap()
}

async fn put_stat_read(store: &dyn BlobStore) {
    let data = pattern(10_000, 1);
    let digest = Digest::sha256_of(&data);
    assert_eq!(store.stat(&digest).await.unwrap(), None);
    assert!(matches!(store.read(&digest, None).await, Err(BlobError::NotFound)));
    assert_eq!(store.put(&digest, stream_of(&data, 999)).await.unwrap(), 10_000);
    assert_eq!(store.stat(&digest).await.unwrap(), Some(10_000));
    assert_eq!(read_all(store, &digest, None).await, data);
    let empty = Digest::sha256_of(b"");
    assert_eq!(store.put(&empty, stream_of(b"", 1)).await.unwrap(), 0);
    assert_eq!(store.stat(&empty).await.unwrap(), Some(0));
    assert_eq!(read_all(store, &empty, None).await, b"");
    let sha512_data = pattern(77, 5);
    let sha512 = Digest::compute(Algorithm::Sha512, &sha512_data);
    assert_eq!(store.put(&sha512, stream_of(&sha512_data, 10)).await.unwrap(), 77);
    assert_eq!(read_all(store, &sha512, None).await, sha512_data);
    for digest in [digest, empty, sha512] {
        assert!(store.delete(&digest).await.unwrap());
    }
}

async fn ranges(store: &dyn BlobStore) {
    let data = pattern(2000, 2);
    let digest = Digest::sha256_of(&data);
    store.put(&digest, stream_of(&data, 300)).await.unwrap();
    let range = |start, end| Some(ByteRange { start, end });
    assert_eq!(read_all(store, &digest, range(500, 1499)).await, &data[500..1500]);
    assert_eq!(read_all(store, &digest, range(0, 0)).await, &data[..1]);
    assert_eq!(read_all(store, &digest, range(1999, 1999)).await, &data[1999..]);
    assert_eq!(read_all(store, &digest, range(1990, 5000)).await, &data[1990..], "the end is cut at the blob's end");
    for start in [2000, 2001, u64::MAX - 1] {
        let beyond = store.read(&digest, range(start, start + 1)).await;
        assert!(matches!(beyond, Err(BlobError::RangeNotSatisfiable { size: 2000 })), "start {start}");
    }
    let absent = Digest::sha256_of(b"absent");
    assert!(matches!(store.read(&absent, range(0, 1)).await, Err(BlobError::NotFound)));
    store.delete(&digest).await.unwrap();
}

/// `open_region`, where a store offers one, holds exactly what `read` streams.
async fn regions_hold_what_reads_stream(store: &dyn BlobStore) {
    let data = pattern(3000, 9);
    let digest = Digest::sha256_of(&data);
    store.put(&digest, stream_of(&data, 700)).await.unwrap();
    let absent = Digest::sha256_of(b"absent region");
    assert!(store.open_region(&absent, None).await.unwrap().is_none(), "an absent blob has no region");
    let ranges = [None, Some(ByteRange { start: 5, end: 2004 }), Some(ByteRange { start: 2990, end: 9000 })];
    for range in ranges {
        if let Some(region) = store.open_region(&digest, range).await.unwrap() {
            let bytes = collect(region.into_stream()).await.unwrap();
            assert_eq!(bytes, read_all(store, &digest, range).await, "region {range:?}");
        }
    }
    if store.open_region(&digest, None).await.unwrap().is_some() {
        let beyond = store.open_region(&digest, Some(ByteRange { start: 3000, end: 3001 })).await;
        assert!(matches!(beyond, Err(BlobError::RangeNotSatisfiable { size: 3000 })));
    }
    store.delete(&digest).await.unwrap();
}

async fn mismatch_and_broken_bodies_leave_nothing(store: &dyn BlobStore) {
    let claimed = Digest::sha256_of(b"what the client promised");
    let result = store.put(&claimed, stream_of(b"something else", 4)).await;
    match result {
        Err(BlobError::DigestMismatch { expected, actual }) => {
            assert_eq!(expected, claimed);
            assert_eq!(actual, Digest::sha256_of(b"something else"));
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    assert_eq!(store.stat(&claimed).await.unwrap(), None);
    let claimed_sha512 = Digest::compute(Algorithm::Sha512, b"promised");
    assert!(matches!(store.put(&claimed_sha512, stream_of(b"other", 2)).await, Err(BlobError::DigestMismatch { .. })));
    let broken: ByteStream = Box::pin(futures::stream::iter([
        Ok(Bytes::from_static(b"partial")),
        Err(std::io::Error::other("client went away")),
    ]));
    let digest = Digest::sha256_of(b"partial");
    assert!(matches!(store.put(&digest, broken).await, Err(BlobError::Io(_))));
    assert_eq!(store.stat(&digest).await.unwrap(), None, "a broken stream stores nothing, even a valid prefix");
    assert!(store.list().await.unwrap().is_empty(), "failed puts leave nothing listed");
}

async fn idempotent_put_still_verifies(store: &dyn BlobStore) {
    let data = pattern(100, 3);
    let digest = Digest::sha256_of(&data);
    assert_eq!(store.put(&digest, stream_of(&data, 7)).await.unwrap(), 100);
    assert_eq!(store.put(&digest, stream_of(&data, 13)).await.unwrap(), 100);
    let wrong = store.put(&digest, stream_of(b"not the content", 4)).await;
    assert!(matches!(wrong, Err(BlobError::DigestMismatch { .. })), "a present blob is still verified");
    assert_eq!(read_all(store, &digest, None).await, data, "a refused put leaves the stored blob intact");
    store.delete(&digest).await.unwrap();
}

async fn concurrent_puts_of_one_blob(store: &dyn BlobStore) {
    let data = pattern(300_000, 6);
    let digest = Digest::sha256_of(&data);
    let puts = (0..4).map(|i| store.put(&digest, stream_of(&data, 10_000 + i)));
    for result in futures::future::join_all(puts).await {
        assert_eq!(result.unwrap(), 300_000);
    }
    assert_eq!(read_all(store, &digest, None).await, data);
    store.delete(&digest).await.unwrap();
}

async fn delete(store: &dyn BlobStore) {
    let digest = Digest::sha256_of(b"short-lived");
    store.put(&digest, stream_of(b"short-lived", 5)).await.unwrap();
    assert!(store.delete(&digest).await.unwrap());
    assert!(!store.delete(&digest).await.unwrap(), "deleting an absent blob reports false");
    assert_eq!(store.stat(&digest).await.unwrap(), None);
    assert!(matches!(store.read(&digest, None).await, Err(BlobError::NotFound)));
    store.put(&digest, stream_of(b"short-lived", 5)).await.unwrap();
    assert_eq!(store.stat(&digest).await.unwrap(), Some(11), "a deleted blob can be stored again");
    store.delete(&digest).await.unwrap();
}

async fn put_file(store: &dyn BlobStore) {
    let data = pattern(500_000, 7);
    let digest = Digest::sha256_of(&data);
    let path = std::env::temp_dir().join(format!("flotilla-suite-{}", uuid::Uuid::new_v4()));
    tokio::fs::write(&path, &data).await.unwrap();
    assert_eq!(store.put_file(&digest, &path).await.unwrap(), 500_000);
    let _ = tokio::fs::remove_file(&path).await;
    assert_eq!(read_all(store, &digest, None).await, data);
    store.delete(&digest).await.unwrap();
}

async fn large_streamed_blob(store: &dyn BlobStore) {
    let data = pattern(LARGE_BLOB_BYTES, 4);
    let digest = Digest::sha256_of(&data);
    let size = store.put(&digest, stream_of(&data, LARGE_BODY_CHUNK_BYTES)).await.unwrap();
    assert_eq!(size, LARGE_BLOB_BYTES as u64);
    let mut stream = store.read(&digest, None).await.unwrap();
    let mut offset = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        assert!(chunk.len() <= MAX_READ_CHUNK_BYTES, "a read yielded {} bytes at once", chunk.len());
        assert!(chunk[..] == data[offset..offset + chunk.len()], "bytes differ at {offset}");
        offset += chunk.len();
    }
    assert_eq!(offset, LARGE_BLOB_BYTES);
    let (start, end) = (LARGE_BLOB_BYTES as u64 / 3, 2 * LARGE_BLOB_BYTES as u64 / 3);
    let middle = read_all(store, &digest, Some(ByteRange { start, end })).await;
    assert!(middle[..] == data[start as usize..=end as usize], "a range across many chunks");
    store.delete(&digest).await.unwrap();
}

async fn listing(store: &dyn BlobStore) {
    let contents = [pattern(10, 8), pattern(20, 9), pattern(30, 10)];
    let mut expected = vec![
        (Digest::sha256_of(&contents[0]), 10),
        (Digest::sha256_of(&contents[1]), 20),
        (Digest::compute(Algorithm::Sha512, &contents[2]), 30),
    ];
    for ((digest, _), data) in expected.iter().zip(&contents) {
        store.put(digest, stream_of(data, 3)).await.unwrap();
    }
    expected.sort();
    assert_eq!(store.list().await.unwrap(), expected, "every blob with its size, in digest order");
    for (digest, _) in &expected {
        store.delete(digest).await.unwrap();
    }
    assert!(store.list().await.unwrap().is_empty());
}
