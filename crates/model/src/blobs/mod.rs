//! The blobs domain: the cluster-wide index of stored blobs, their
//! reference counts and garbage collection's tombstones.
//!
//! This is a shared kernel: a domain whose records hold blob bytes records
//! them with [`record_blob`] (the garbage-collection fence) and counts its
//! references with [`adjust_refcount`]. Its own command is the collection.
//!
//! Rules `apply` enforces: a blob recorded twice has one size; an upload
//! whose bytes were written before a collection of the blob that the
//! uploader had not seen is refused; collection forgets only blobs that are
//! still unreferenced after the grace period, and fences each one with a
//! tombstone in a new epoch.

mod gc;
mod reader;
mod records;

use serde::{Deserialize, Serialize};

use flotilla_storage::{Digest, ErrorKind};

use crate::domain::Domain;
use crate::rejection::{Refusal, Rejection};
use crate::store::{decode, for_each_entry, get_json, key, put_json, tables, StateRead, StoreError, Tx};

pub use gc::{MAX_COLLECT_BATCH, TOMBSTONE_RETENTION_MS};
pub use reader::Reader;
pub use records::{BlobRecord, GcState, Tombstone};

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
}

/// What a collection did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Blob records forgotten by this command, and their bytes.
    Collected { blobs: u64, bytes: u64 },
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
        }
    }

    fn apply(tx: &mut Tx<'_>, command: &Command) -> Result<Outcome, Refusal> {
        match command {
            Command::CollectBlobs { task, digests, unreferenced_before_ms } => {
                gc::collect_blobs(tx, task.as_deref(), digests, *unreferenced_before_ms)
            }
        }
    }

    fn check_invariants(store: &dyn StateRead) -> Result<(), String> {
        check_invariants(store).map_err(|error| error.to_string())
    }
}

fn check_invariants(store: &dyn StateRead) -> Result<(), StoreError> {
    let violation = |message: String| Err(StoreError(message));
    for_each_entry(store, &[tables::BLOB], |key, value| {
        let record: BlobRecord = decode(value)?;
        if record.unreferenced_since_ms.is_some() != (record.refcount == 0) {
            let digest = blob_digest_of(key).map_or_else(|| format!("{key:?}"), |digest| digest.to_string());
            return violation(format!("blob {digest}: unreferenced_since set iff refcount is 0"));
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
    let mut tombstones = 0;
    for_each_entry(store, &[tables::TOMBSTONE], |_, _| {
        tombstones += 1;
        Ok(())
    })?;
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
            if existing.refcount == 0 {
                let record = BlobRecord { unreferenced_since_ms: Some(tx.now_ms), ..existing };
                put_json(tx, blob_key, &record);
            }
            Ok(())
        }
        None => {
            let now = tx.now_ms;
            let record = BlobRecord { size, refcount: 0, created_ms: now, unreferenced_since_ms: Some(now) };
            put_json(tx, blob_key, &record);
            Ok(())
        }
    }
}

/// A blob already recorded is pushed again (an OCI mount): its grace period
/// starts over. Refused if the blob has no record.
pub fn touch_blob(tx: &mut Tx<'_>, digest: &Digest) -> Result<(), Refusal> {
    let blob_key = blob_key(digest);
    let Some(mut record) = get_json::<BlobRecord>(tx, &blob_key)? else {
        let rejection = Rejection::new(ErrorKind::NotFound, code::BLOB_UNKNOWN, "blob unknown to this registry");
        return Err(rejection.with_digest(digest).into());
    };
    if record.refcount == 0 {
        record.unreferenced_since_ms = Some(tx.now_ms);
        put_json(tx, blob_key, &record);
    }
    Ok(())
}

/// Whether the blob has a record (it was stored and not collected since).
pub fn is_recorded(store: &(impl StateRead + ?Sized), digest: &Digest) -> Result<bool, StoreError> {
    Ok(store.get(&blob_key(digest))?.is_some())
}

/// Adds `delta` references to a recorded blob; a blob whose count reaches zero
/// starts its grace period.
pub fn adjust_refcount(tx: &mut Tx<'_>, digest: &Digest, delta: i64) -> Result<(), Refusal> {
    let key = blob_key(digest);
    let Some(mut record) = get_json::<BlobRecord>(tx, &key)? else {
        debug_assert!(delta < 0, "a referenced blob always has a record");
        return Ok(());
    };
    record.refcount = record.refcount.saturating_add_signed(delta);
    record.unreferenced_since_ms = match (record.refcount, record.unreferenced_since_ms) {
        (0, None) => Some(tx.now_ms),
        (0, since) => since,
        _ => None,
    };
    put_json(tx, key, &record);
    Ok(())
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
