//! # flotilla-storage
//!
//! What one Flotilla node keeps on its own disk:
//! - [`engine`]: the RocksDB database (column families, big-endian keys) shared by
//!   the Raft log, the applied state machine and node-local facts;
//! - [`blob_store`]: the content-addressed blob store — digests verified while
//!   streaming, temp file, fsync, rename, fsync of the directory — with range reads
//!   and a listing for scrub; implemented on disk by [`fs`] (whose docs draw the
//!   on-disk layout) and in memory by [`memory`], both run through `test_suite`;
//! - [`file_stream`]: stored files streamed out with one copy per byte;
//! - [`upload`]: resumable upload sessions that survive a restart;
//! - [`write_behind`]: blob files whose write-back starts while they are still
//!   being received, so the closing fsync has little left to write.
//!
//! This crate never imports openraft, tonic, axum or foca: it knows nothing of
//! replication or HTTP.

pub mod blob_store;
pub mod digest;
pub mod engine;
pub mod file_stream;
pub mod fs;
pub mod memory;
pub mod range;
#[doc(hidden)]
pub mod test_suite;
pub mod upload;
pub mod write_behind;

pub use blob_store::{BlobError, BlobStore, ByteStream, ErrorKind};
pub use digest::{Algorithm, Digest, DigestError, Hasher};
pub use engine::{Engine, EngineError};
pub use fs::FsBlobStore;
pub use memory::MemoryBlobStore;
pub use range::ByteRange;
pub use upload::{UploadId, UploadSession, Uploads};
