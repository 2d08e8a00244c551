//! Garbage collection's command: forget unreferenced blobs, fence them with
//! tombstones, expire old tombstones.

use flotilla_storage::Digest;

use super::{
    blob_key, gc_state_key, tombstone_epoch_key, tombstone_epoch_parts, tombstone_key, BlobRecord, GcState, Outcome,
    Tombstone,
};
use crate::rejection::Refusal;
use crate::store::{get_json, put_json, tables, StateRead, StateWrite, StoreError, Tx};
use crate::tasks::{count_into, counting_task, TaskCounters};

/// How long tombstones of collected blobs are kept (ms): far longer than any
/// upload takes from writing its bytes to recording the blob, and long enough
/// for a node that was down to come back and delete its copies.
pub const TOMBSTONE_RETENTION_MS: u64 = 24 * 60 * 60 * 1000;
/// At most this many expired tombstones are dropped per collection.
const TOMBSTONE_EXPIRY_BATCH: usize = 1024;
/// At most this many blobs per `CollectBlobs`, bounding the cost of one apply.
pub const MAX_COLLECT_BATCH: usize = 1000;

pub(super) fn collect_blobs(
    tx: &mut Tx<'_>,
    task_id: Option<&str>,
    digests: &[Digest],
    unreferenced_before_ms: u64,
) -> Result<Outcome, Refusal> {
    let task = counting_task(tx, task_id, digests.len(), MAX_COLLECT_BATCH, "blobs per collection")?;
    let mut gc = get_json::<GcState>(tx, &gc_state_key())?.unwrap_or_default();
    expire_tombstones(tx, &mut gc)?;
    let epoch = gc.epoch + 1;
    let mut collected = TaskCounters::default();
    for digest in digests {
        let blob_key = blob_key(digest);
        // A blob without a record is a stray copy (an upload that never finished): fenced and deleted too.
        if let Some(record) = get_json::<BlobRecord>(tx, &blob_key)? {
            let unreferenced_long_enough =
                record.refcount == 0 && record.unreferenced_since_ms.is_some_and(|t| t <= unreferenced_before_ms);
            if !unreferenced_long_enough {
                continue;
            }
            super::forget_record(tx, digest, &record);
            crate::oci::forget_blob(tx, digest)?;
            collected.blobs += 1;
            collected.bytes += record.size;
        }
        if let Some(old) = get_json::<Tombstone>(tx, &tombstone_key(digest))? {
            tx.delete(&tombstone_epoch_key(old.epoch, digest));
        }
        put_json(tx, tombstone_key(digest), &Tombstone { epoch, collected_ms: tx.now_ms });
        tx.put(tombstone_epoch_key(epoch, digest), Vec::new());
    }
    gc.epoch = epoch;
    put_json(tx, gc_state_key(), &gc);
    count_into(tx, task, collected);
    Ok(Outcome::Collected { blobs: collected.blobs, bytes: collected.bytes })
}

/// Drops tombstones older than the retention, oldest epochs first, raising the floor past them.
fn expire_tombstones(tx: &mut Tx<'_>, gc: &mut GcState) -> Result<(), StoreError> {
    let cutoff = tx.now_ms.saturating_sub(TOMBSTONE_RETENTION_MS);
    let oldest = tx.scan(&[tables::TOMBSTONE_EPOCH], None, TOMBSTONE_EXPIRY_BATCH)?;
    for (key, _) in oldest {
        let Some((epoch, digest)) = tombstone_epoch_parts(&key) else { continue };
        let tombstone_key = tombstone_key(&digest);
        let tombstone = get_json::<Tombstone>(tx, &tombstone_key)?;
        if tombstone.as_ref().is_some_and(|tombstone| tombstone.collected_ms >= cutoff) {
            break;
        }
        tx.delete(&key);
        if tombstone.is_some_and(|tombstone| tombstone.epoch == epoch) {
            tx.delete(&tombstone_key);
        }
        gc.floor = gc.floor.max(epoch);
    }
    Ok(())
}
