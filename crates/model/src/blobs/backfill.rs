//! Completing a state that 0.1.0 wrote: the unreferenced index entry of
//! every blob record, then the holder row of every reference an OCI manifest
//! holds. Idempotent, in bounded batches, resumable from its cursor; the GC
//! task drives it before the first collection that reads the index.

use flotilla_storage::Digest;
use serde::{Deserialize, Serialize};

use super::{blob_digest_of, blob_key, gc_state_key, unreferenced_key, BlobRecord, GcState};
use crate::rejection::Refusal;
use crate::store::{decode, get_json, put_json, tables, StateRead, StateWrite, StoreError, Tx};

/// Records looked at per backfill command, bounding the cost of one apply.
pub const BACKFILL_BATCH: usize = 500;

/// Where a backfill batch starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackfillCursor {
    /// Blob records after `after` get their unreferenced index entries.
    Blobs { after: Option<Digest> },
    /// OCI manifests after `after` (repository, digest) get their holder rows.
    Manifests { after: Option<(String, Digest)> },
}

impl BackfillCursor {
    /// The first batch.
    pub fn start() -> Self {
        BackfillCursor::Blobs { after: None }
    }
}

pub(super) fn run(tx: &mut Tx<'_>, from: &BackfillCursor) -> Result<Option<BackfillCursor>, Refusal> {
    match from {
        BackfillCursor::Blobs { after } => {
            let start = after.as_ref().map(blob_key);
            let page = tx.scan(&[tables::BLOB], start.as_deref(), BACKFILL_BATCH)?;
            let mut last = None;
            for (key, value) in &page {
                let digest = blob_digest_of(key).ok_or_else(|| StoreError(format!("malformed blob key {key:?}")))?;
                let record: BlobRecord = decode(value)?;
                if let Some(since) = record.unreferenced_since_ms {
                    tx.put(unreferenced_key(since, &digest), Vec::new());
                }
                last = Some(digest);
            }
            Ok(Some(match page.len() < BACKFILL_BATCH {
                true => BackfillCursor::Manifests { after: None },
                false => BackfillCursor::Blobs { after: last },
            }))
        }
        BackfillCursor::Manifests { after } => {
            let after = after.as_ref().map(|(repo, digest)| (repo.as_str(), digest));
            match crate::oci::backfill_holders(tx, after, BACKFILL_BATCH)? {
                Some(last) => Ok(Some(BackfillCursor::Manifests { after: Some(last) })),
                None => {
                    let gc = get_json::<GcState>(tx, &gc_state_key())?.unwrap_or_default();
                    put_json(tx, gc_state_key(), &GcState { indexed: true, ..gc });
                    Ok(None)
                }
            }
        }
    }
}
