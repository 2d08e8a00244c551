//! The cluster's blob data path.
//!
//! - [`replicated::ReplicatedBlobStore`]: the `BlobStore` the REST surfaces
//!   use. Writes stream to the blob's owners in parallel and succeed on a
//!   write quorum; reads come from the local disk or an owner.
//! - [`service`]: the gRPC `BlobService` other nodes call.
//! - [`peer`]: the client of other nodes' blob services.
//! - [`sync`]: pushing copies to the owners a new layout added.
//! - [`maintain`]: repair, scrub and dropping orphan copies on one node.

pub mod maintain;
pub mod peer;
pub mod replicated;
pub mod service;
pub mod sync;

use flotilla_storage::Digest;

use crate::placement;

/// The partition of a blob: from the leading bits of its hash.
pub fn partition_of(digest: &Digest, partitions: u32) -> u32 {
    placement::partition_of(digest.hash(), partitions)
}
