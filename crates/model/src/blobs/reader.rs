//! Reads of the blob index.

use flotilla_storage::Digest;

use super::{
    blob_digest_of, blob_key, gc_state_key, tombstone_epoch_key, tombstone_epoch_parts, tombstone_key,
    unreferenced_key, unreferenced_parts, BlobRecord, GcState, Tombstone,
};
use crate::catalog::MAX_PAGE;
use crate::store::{decode, get_json, tables, StoreError, View};

/// Reads blob records, tombstones and the GC state.
pub struct Reader<'s> {
    store: View<'s>,
}

impl<'s> Reader<'s> {
    pub fn new(store: impl Into<View<'s>>) -> Self {
        Reader { store: store.into() }
    }

    /// The cluster-wide record of a blob.
    pub fn blob(&self, digest: &Digest) -> Result<Option<BlobRecord>, StoreError> {
        get_json(&*self.store, &blob_key(digest))
    }

    /// Blob records in digest order, strictly after `after`, at most `limit` (for garbage collection).
    pub fn blobs(&self, after: Option<&Digest>, limit: usize) -> Result<Vec<(Digest, BlobRecord)>, StoreError> {
        let after = after.map(blob_key);
        let entries = self.store.scan(&[tables::BLOB], after.as_deref(), limit.min(MAX_PAGE))?;
        let mut blobs = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let digest = blob_digest_of(&key).ok_or_else(|| StoreError("malformed blob key".into()))?;
            blobs.push((digest, decode(&value)?));
        }
        Ok(blobs)
    }

    /// Blobs held by nothing since `before_ms` or earlier, oldest first,
    /// strictly after `after` (a time and digest), at most `limit`:
    /// `(unreferenced_since_ms, digest)`. What garbage collection reads: its
    /// cost follows the garbage, not the number of blobs.
    pub fn unreferenced(
        &self,
        before_ms: u64,
        after: Option<(u64, &Digest)>,
        limit: usize,
    ) -> Result<Vec<(u64, Digest)>, StoreError> {
        let start = after.map(|(since, digest)| unreferenced_key(since, digest));
        let entries = self.store.scan(&[tables::BLOB_UNREFERENCED], start.as_deref(), limit.min(MAX_PAGE))?;
        let mut blobs = Vec::with_capacity(entries.len());
        for (key, _) in entries {
            let (since, digest) =
                unreferenced_parts(&key).ok_or_else(|| StoreError("malformed unreferenced key".into()))?;
            if since > before_ms {
                break;
            }
            blobs.push((since, digest));
        }
        Ok(blobs)
    }

    /// The records holding a blob, from its holder rows.
    pub fn holders(&self, digest: &Digest) -> Result<Vec<super::Holder>, StoreError> {
        super::holders(&*self.store, digest)
    }

    /// Garbage-collection epochs (zero before the first collection).
    pub fn gc_state(&self) -> Result<GcState, StoreError> {
        Ok(get_json(&*self.store, &gc_state_key())?.unwrap_or_default())
    }

    /// Tombstones in the order of the collections that made them, strictly
    /// after `after` (an epoch and digest), at most `limit`: `(epoch, digest, collected_ms)`.
    pub fn tombstones(
        &self,
        after: Option<(u64, &Digest)>,
        limit: usize,
    ) -> Result<Vec<(u64, Digest, u64)>, StoreError> {
        let start = after.map(|(epoch, digest)| tombstone_epoch_key(epoch, digest));
        let entries = self.store.scan(&[tables::TOMBSTONE_EPOCH], start.as_deref(), limit.min(MAX_PAGE))?;
        let mut tombstones = Vec::with_capacity(entries.len());
        for (key, _) in entries {
            let (epoch, digest) =
                tombstone_epoch_parts(&key).ok_or_else(|| StoreError("malformed tombstone key".into()))?;
            let collected_ms = get_json::<Tombstone>(&*self.store, &tombstone_key(&digest))?
                .filter(|tombstone| tombstone.epoch == epoch)
                .map_or(0, |tombstone| tombstone.collected_ms);
            tombstones.push((epoch, digest, collected_ms));
        }
        Ok(tombstones)
    }
}
