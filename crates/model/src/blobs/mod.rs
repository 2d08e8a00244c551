//! The blobs domain: the cluster-wide index of stored blobs, their
//! reference counts and garbage collection's tombstones.
//!
//! This is a shared kernel: a domain whose records hold blob bytes records
//! them with [`record_blob`] (the garbage-collection fence), then adds a
//! holder row with [`add_ref`] and drops it with [`drop_ref`]; the count is
//! the number of rows (`refs`). Blobs held by nobody are listed by the time
//! they became unreferenced, so garbage collection reads only garbage. Its
//! own commands are the collection and the backfill of what 0.1.0 did not
//! keep (holder rows, the unreferenced index).
//!
//! Rules `apply` enforces: a blob recorded twice has one size; an upload
//! whose bytes were written before a collection of the blob that the
//! uploader had not seen is refused; collection forgets only blobs that are
//! still unreferenced after the grace period, and fences each one with a
//! tombstone in a new epoch.

mod backfill;
mod gc;
mod reader;
mod records;
mod refs;

use serde::{Deserialize, Serialize};

use flotilla_storage::{Digest, ErrorKind};

use crate::domain::Domain;
use crate::rejection::{Refusal, Rejection};
use crate::store::codec::{KeyReader, KeyWriter};
use crate::store::{
    count_entries, decode, for_each_entry, get_json, key, put_json, tables, StateRead, StateWrite, StoreError, Tx,
};

pub use backfill::{BackfillCursor, BACKFILL_BATCH};
pub use gc::{MAX_COLLECT_BATCH, TOMBSTONE_RETENTION_MS};
pub use reader::Reader;
pub use records::{BlobRecord, GcState, Tombstone};
pub(crate) use refs::backfill_ref;
pub use refs::{add_ref, drop_ref, holders, is_held_by, recount, row_parts, Holder};

/// Refusal codes of this domain.
pub mod code {
    /// The same digest was recorded with a different size.
    pub const SIZE_CONFLICT: &str = "SIZE_CONFLICT";
    /// The blob was garbage-collected while it was being uploaded.
    pub const BLOB_COLLECTED: &str = "BLOB_COLLECTED";
    pub const BLOB_UNKNOWN: &str = "BLOB_UNKNOWN";
}

/// Garbage collection of blobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Forgets each listed blob that nothing references and that has been
    /// unreferenced since `unreferenced_before_ms` or earlier (re-checked
    /// here), or that has no record at all (a stray copy). Each collected blob
    /// gets a tombstone in a new epoch, from which every node deletes its
    /// copy. Counted into `task`; refused if that task is terminal.
    CollectBlobs { task: Option<String>, digests: Vec<Digest>, unreferenced_before_ms: u64 },
    /// Writes, for at most [`BACKFILL_BATCH`] records from `from` on, what a
    /// state written by 0.1.0 lacks: the unreferenced index entry of each
    /// blob record, then the holder rows of each OCI manifest. The last batch
    /// marks the state complete (`GcState::indexed`).
    Backfill { from: BackfillCursor },
}

/// What a blobs command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Blob records forgotten by this command, and their bytes.
    Collected { blobs: u64, bytes: u64 },
    /// Where the next backfill batch starts; `None` when it is complete.
    Backfilled { next: Option<BackfillCursor> },
}

/// The blobs domain.
pub struct Blobs;

impl Domain for Blobs {
    const NAME: &'static str = "blobs";
    type Command = Command;
    type Outcome = Outcome;

    fn command_name(command: &Command) -> &'static str {
        match command {
            Command::CollectBlobs { .. } => "blobs.collect",
            Command::Backfill { .. } => "blobs.backfill",
        }
    }

    fn apply(tx: &mut Tx<'_>, command: &Command) -> Result<Outcome, Refusal> {
        match command {
            Command::CollectBlobs { task, digests, unreferenced_before_ms } => {
                gc::collect_blobs(tx, task.as_deref(), digests, *unreferenced_before_ms)
            }
            Command::Backfill { from } => Ok(Outcome::Backfilled { next: backfill::run(tx, from)? }),
        }
    }

    fn check_invariants(store: &dyn StateRead) -> Result<(), String> {
        check_invariants(store).map_err(|error| error.to_string())
    }
}

fn check_invariants(store: &dyn StateRead) -> Result<(), StoreError> {
    let violation = |message: String| Err(StoreError(message));
    let mut unreferenced = 0;
    for_each_entry(store, &[tables::BLOB], |key, value| {
        let record: BlobRecord = decode(value)?;
        let digest = blob_digest_of(key).ok_or_else(|| StoreError(format!("malformed blob key {key:?}")))?;
        if record.unreferenced_since_ms.is_some() != (record.refcount == 0) {
            return violation(format!("blob {digest}: unreferenced_since set iff refcount is 0"));
        }
        let rows = recount(store, &digest)?;
        if record.refcount != rows {
            return violation(format!("blob {digest} counts {} holders, {rows} rows exist", record.refcount));
        }
        if let Some(since) = record.unreferenced_since_ms {
            unreferenced += 1;
            if store.get(&unreferenced_key(since, &digest))?.is_none() {
                return violation(format!("unreferenced blob {digest} is not indexed under {since}"));
            }
        }
        Ok(())
    })?;
    let indexed = count_entries(store, &[tables::BLOB_UNREFERENCED])?;
    if indexed != unreferenced {
        return violation(format!("{indexed} unreferenced index entries for {unreferenced} unreferenced blobs"));
    }
    for_each_entry(store, &[tables::BLOB_REF], |key, _| {
        let digest = refs::digest_of_row(key).ok_or_else(|| StoreError(format!("malformed holder row {key:?}")))?;
        if store.get(&blob_key(&digest))?.is_none() {
            return violation(format!("a holder row names {digest}, which has no record"));
        }
        Ok(())
    })?;
    let gc = get_json::<GcState>(store, &gc_state_key())?.unwrap_or_default();
    if gc.floor > gc.epoch {
        return violation(format!("gc floor {} above epoch {}", gc.floor, gc.epoch));
    }
    let mut by_epoch = 0;
    for_each_entry(store, &[tables::TOMBSTONE_EPOCH], |key, _| {
        by_epoch += 1;
        let (epoch, digest) = tombstone_epoch_parts(key).ok_or_else(|| StoreError("malformed epoch key".into()))?;
        let tombstone = get_json::<Tombstone>(store, &tombstone_key(&digest))?;
        if tombstone.is_none_or(|tombstone| tombstone.epoch != epoch) || epoch > gc.epoch {
            return violation(format!("tombstone of {digest} disagrees with its epoch entry {epoch}"));
        }
        Ok(())
    })?;
    let tombstones = count_entries(store, &[tables::TOMBSTONE])?;
    if tombstones != by_epoch {
        return violation(format!("{tombstones} tombstones, {by_epoch} epoch entries"));
    }
    Ok(())
}

/// Records verified bytes of `digest` (the kernel every byte-storing command
/// calls before it adds a reference). `gc_epoch` is the garbage-collection
/// epoch the proposer had applied before the bytes were written; refused if
/// the blob was collected in a later epoch (its bytes may be gone from some
/// node), so the client uploads again. A blob recorded again restarts its
/// grace period while unreferenced, so a push in progress is not collected under it.
pub fn record_blob(tx: &mut Tx<'_>, digest: &Digest, size: u64, gc_epoch: u64) -> Result<(), Refusal> {
    check_not_collected_since(tx, digest, gc_epoch)?;
    let blob_key = blob_key(digest);
    match get_json::<BlobRecord>(tx, &blob_key)? {
        Some(existing) if existing.size != size => {
            let message = format!("blob recorded with size {}, not {size}", existing.size);
            Err(Rejection::new(ErrorKind::Conflict, code::SIZE_CONFLICT, message).with_digest(digest).into())
        }
        Some(existing) => {
            restart_grace(tx, digest, &existing);
            Ok(())
        }
        None => {
            let now = tx.now_ms;
            let record = BlobRecord { size, refcount: 0, created_ms: now, unreferenced_since_ms: Some(now) };
            store_record(tx, digest, None, &record);
            Ok(())
        }
    }
}

/// A blob already recorded is pushed again (an OCI mount): its grace period
/// starts over. Refused if the blob has no record.
pub fn touch_blob(tx: &mut Tx<'_>, digest: &Digest) -> Result<(), Refusal> {
    let Some(existing) = get_json::<BlobRecord>(tx, &blob_key(digest))? else {
        let rejection = Rejection::new(ErrorKind::NotFound, code::BLOB_UNKNOWN, "blob unknown to this registry");
        return Err(rejection.with_digest(digest).into());
    };
    restart_grace(tx, digest, &existing);
    Ok(())
}

/// A blob pushed again while nothing holds it: its grace period starts over.
fn restart_grace(tx: &mut Tx<'_>, digest: &Digest, existing: &BlobRecord) {
    if existing.refcount == 0 {
        let record = BlobRecord { unreferenced_since_ms: Some(tx.now_ms), ..existing.clone() };
        store_record(tx, digest, Some(existing), &record);
    }
}

/// Whether the blob has a record (it was stored and not collected since).
pub fn is_recorded(store: &(impl StateRead + ?Sized), digest: &Digest) -> Result<bool, StoreError> {
    Ok(store.get(&blob_key(digest))?.is_some())
}

/// Adds `delta` references to a recorded blob (only `refs` calls it, with the
/// rows); a blob whose count reaches zero starts its grace period.
fn adjust_refcount(tx: &mut Tx<'_>, digest: &Digest, delta: i64) -> Result<(), Refusal> {
    let Some(existing) = get_json::<BlobRecord>(tx, &blob_key(digest))? else {
        debug_assert!(delta < 0, "a referenced blob always has a record");
        return Ok(());
    };
    let refcount = existing.refcount.saturating_add_signed(delta);
    let unreferenced_since_ms = match (refcount, existing.unreferenced_since_ms) {
        (0, None) => Some(tx.now_ms),
        (0, since) => since,
        _ => None,
    };
    let record = BlobRecord { refcount, unreferenced_since_ms, ..existing.clone() };
    store_record(tx, digest, Some(&existing), &record);
    Ok(())
}

/// Stores a blob record, keeping the unreferenced index in step with its
/// `unreferenced_since_ms` (the one place records are written).
fn store_record(tx: &mut Tx<'_>, digest: &Digest, before: Option<&BlobRecord>, record: &BlobRecord) {
    let since_before = before.and_then(|before| before.unreferenced_since_ms);
    if since_before != record.unreferenced_since_ms {
        if let Some(since) = since_before {
            tx.delete(&unreferenced_key(since, digest));
        }
        if let Some(since) = record.unreferenced_since_ms {
            tx.put(unreferenced_key(since, digest), Vec::new());
        }
    }
    put_json(tx, blob_key(digest), record);
}

/// Forgets a blob record and its index entry (garbage collection).
fn forget_record(tx: &mut Tx<'_>, digest: &Digest, record: &BlobRecord) {
    if let Some(since) = record.unreferenced_since_ms {
        tx.delete(&unreferenced_key(since, digest));
    }
    tx.delete(&blob_key(digest));
}

/// Unreferenced blobs in the order they became so.
fn unreferenced_key(since_ms: u64, digest: &Digest) -> Vec<u8> {
    KeyWriter::table(tables::BLOB_UNREFERENCED).u64(since_ms).digest(digest).finish()
}

/// Splits an unreferenced-index key into its time and digest.
fn unreferenced_parts(key: &[u8]) -> Option<(u64, Digest)> {
    let mut reader = KeyReader::table(key, tables::BLOB_UNREFERENCED)?;
    let parts = (reader.u64()?, reader.digest()?);
    reader.is_done().then_some(parts)
}

/// Refuses a blob whose bytes were written before a collection of it that the writer had not seen.
fn check_not_collected_since(store: &(impl StateRead + ?Sized), digest: &Digest, gc_epoch: u64) -> Result<(), Refusal> {
    let collected_after = match get_json::<Tombstone>(store, &tombstone_key(digest))? {
        Some(tombstone) => tombstone.epoch > gc_epoch,
        // Expired tombstones can no longer be checked.
        None => gc_epoch < get_json::<GcState>(store, &gc_state_key())?.unwrap_or_default().floor,
    };
    if collected_after {
        let message = "the blob was garbage-collected while it was uploaded; upload it again";
        return Err(Rejection::new(ErrorKind::Conflict, code::BLOB_COLLECTED, message).with_digest(digest).into());
    }
    Ok(())
}

/// The key of a blob's record.
pub fn blob_key(digest: &Digest) -> Vec<u8> {
    key(tables::BLOB, &[&digest.to_key_bytes()])
}

/// The digest inside a `blob` key.
pub(crate) fn blob_digest_of(key: &[u8]) -> Option<Digest> {
    Digest::from_key_bytes(key.get(1..)?).map(|(digest, _)| digest)
}

/// The key of a blob's tombstone.
pub fn tombstone_key(digest: &Digest) -> Vec<u8> {
    key(tables::TOMBSTONE, &[&digest.to_key_bytes()])
}

/// Tombstones in the order of the collections that made them.
fn tombstone_epoch_key(epoch: u64, digest: &Digest) -> Vec<u8> {
    key(tables::TOMBSTONE_EPOCH, &[&epoch.to_be_bytes(), &digest.to_key_bytes()])
}

/// Splits a `tombstone_epoch` key into its epoch and digest.
fn tombstone_epoch_parts(key: &[u8]) -> Option<(u64, Digest)> {
    let epoch = u64::from_be_bytes(key.get(1..9)?.try_into().ok()?);
    let (digest, _) = Digest::from_key_bytes(key.get(9..)?)?;
    Some((epoch, digest))
}

/// The key of the garbage-collection state.
pub fn gc_state_key() -> Vec<u8> {
    key(tables::GC, &[b"state"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tombstone_keys_sort_by_epoch_and_round_trip() {
        let d = Digest::sha256_of(b"x");
        let (first, second) = (tombstone_epoch_key(1, &d), tombstone_epoch_key(2, &Digest::sha256_of(b"a")));
        assert!(first < second);
        assert_eq!(tombstone_epoch_parts(&first), Some((1, d.clone())));
        assert_eq!(blob_digest_of(&blob_key(&d)), Some(d));
    }
}
