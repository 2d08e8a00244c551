//! Who holds a blob: one row per (blob, holder), kept by apply.
//!
//! Every record that needs a blob's bytes — an OCI manifest today, an
//! Artifactory item, a ViCE image file or a chart tomorrow — adds a row when
//! it appears and drops it when it goes. `BlobRecord::refcount` is the number
//! of rows (the property tests check it), so a blob is collected only when no
//! holder of any domain is left, and `gc_grace` after that.
//!
//! ```text
//!   blob_ref  digest ‖ holder tag ‖ holder parts  -> ()
//! ```
//! The rows of one blob are one prefix (checksum search, "what uses this
//! binary"); holder parts use the escaped tuple encoding, so names may hold
//! any byte.

use flotilla_storage::Digest;

use super::{adjust_refcount, BlobRecord};
use crate::rejection::Refusal;
use crate::store::codec::{KeyReader, KeyWriter};
use crate::store::{for_each_entry, get_json, tables, StateRead, StateWrite, StoreError, Tx};

/// A record that holds a blob.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Holder {
    /// A manifest of an OCI repository that lists the blob (config or layer).
    OciManifest { repo: String, manifest: Digest },
}

/// Tags of holder kinds in keys; never reused.
mod tag {
    pub const OCI_MANIFEST: u8 = 1;
}

impl Holder {
    fn write(&self, key: KeyWriter) -> KeyWriter {
        match self {
            Holder::OciManifest { repo, manifest } => key.tag(tag::OCI_MANIFEST).str(repo).digest(manifest),
        }
    }

    fn read(reader: &mut KeyReader<'_>) -> Option<Holder> {
        let holder = match reader.tag()? {
            tag::OCI_MANIFEST => Holder::OciManifest { repo: reader.str()?, manifest: reader.digest()? },
            _ => return None,
        };
        reader.is_done().then_some(holder)
    }
}

fn ref_key(digest: &Digest, holder: &Holder) -> Vec<u8> {
    holder.write(KeyWriter::table(tables::BLOB_REF).digest(digest)).finish()
}

fn ref_prefix(digest: &Digest) -> Vec<u8> {
    KeyWriter::table(tables::BLOB_REF).digest(digest).finish()
}

/// The blob and holder of a holder row.
pub fn row_parts(key: &[u8]) -> Option<(Digest, Holder)> {
    let mut reader = KeyReader::table(key, tables::BLOB_REF)?;
    let digest = reader.digest()?;
    Some((digest, Holder::read(&mut reader)?))
}

/// The blob a holder row is of.
pub(super) fn digest_of_row(key: &[u8]) -> Option<Digest> {
    KeyReader::table(key, tables::BLOB_REF)?.digest()
}

/// `holder` now holds the recorded blob `digest`. Idempotent: the count grows
/// only when the row is new.
pub fn add_ref(tx: &mut Tx<'_>, digest: &Digest, holder: &Holder) -> Result<(), Refusal> {
    let key = ref_key(digest, holder);
    if tx.get(&key)?.is_some() {
        return Ok(());
    }
    debug_assert!(get_json::<BlobRecord>(tx, &super::blob_key(digest))?.is_some(), "a held blob has a record");
    tx.put(key, Vec::new());
    adjust_refcount(tx, digest, 1)
}

/// `holder` no longer holds `digest`: its row goes and the count drops. A
/// reference made before holder rows existed has no row until the backfill
/// has run; the caller knows it held the blob, so the count drops all the same.
pub fn drop_ref(tx: &mut Tx<'_>, digest: &Digest, holder: &Holder) -> Result<(), Refusal> {
    tx.delete(&ref_key(digest, holder));
    adjust_refcount(tx, digest, -1)
}

/// Writes the row of a reference counted before holder rows existed (the
/// backfill); the count already includes it.
pub(crate) fn backfill_ref(tx: &mut Tx<'_>, digest: &Digest, holder: &Holder) -> Result<(), StoreError> {
    let key = ref_key(digest, holder);
    if tx.get(&key)?.is_none() {
        tx.put(key, Vec::new());
    }
    Ok(())
}

/// Whether `holder` has its row for `digest`.
pub fn is_held_by(store: &(impl StateRead + ?Sized), digest: &Digest, holder: &Holder) -> Result<bool, StoreError> {
    Ok(store.get(&ref_key(digest, holder))?.is_some())
}

/// The holders of `digest`, from the rows.
pub fn holders(store: &(impl StateRead + ?Sized), digest: &Digest) -> Result<Vec<Holder>, StoreError> {
    let prefix = ref_prefix(digest);
    let mut holders = Vec::new();
    for_each_entry(store, &prefix, |key, _| {
        let mut reader = KeyReader::new(&key[prefix.len()..]);
        holders.push(Holder::read(&mut reader).ok_or_else(|| StoreError(format!("malformed holder row {key:?}")))?);
        Ok(())
    })?;
    Ok(holders)
}

/// The count from the rows (for the property tests and a metadata scrub).
pub fn recount(store: &(impl StateRead + ?Sized), digest: &Digest) -> Result<u64, StoreError> {
    Ok(holders(store, digest)?.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_keys_round_trip_with_any_byte_in_a_name() {
        let digest = Digest::sha256_of(b"blob");
        let holder = Holder::OciManifest { repo: "a\u{0}b/c".into(), manifest: Digest::sha256_of(b"m") };
        let key = ref_key(&digest, &holder);
        let prefix = ref_prefix(&digest);
        assert!(key.starts_with(&prefix));
        let mut reader = KeyReader::new(&key[prefix.len()..]);
        assert_eq!(Holder::read(&mut reader), Some(holder));
    }
}
