//! The OCI domain's invariants, checked by the property tests after every
//! command. Full scans: for tests, never for a serving node.

use std::collections::{BTreeMap, BTreeSet};

use flotilla_storage::Digest;

use super::{keys, ManifestContent, ManifestRecord, TagRecord};
use crate::blobs::{self, Holder};
use crate::store::{count_entries, decode, for_each_entry, get_json, tables, StateRead, StoreError};

fn violation(message: String) -> Result<(), StoreError> {
    Err(StoreError(message))
}

pub(super) fn check(store: &dyn StateRead) -> Result<(), StoreError> {
    let mut manifests: Vec<(String, Digest, ManifestRecord)> = Vec::new();
    for_each_entry(store, &[tables::OCI_REPO_MANIFEST], |key, value| {
        let (repo, digest) =
            keys::repo_manifest_parts(key).ok_or_else(|| StoreError("malformed manifest key".into()))?;
        manifests.push((repo.to_owned(), digest, decode(value)?));
        Ok(())
    })?;
    check_blob_references(store, &manifests)?;
    check_contents(store, &manifests)?;
    check_tags(store)?;
    check_links(store)?;
    let referrers = count_entries(store, &[tables::OCI_REFERRER])?;
    for (repo, digest, record) in &manifests {
        if let Some(subject) = &record.subject {
            if store.get(&keys::referrer(repo, subject, digest))?.is_none() {
                return violation(format!("referrer {digest} of {subject} in {repo} is not indexed"));
            }
        }
    }
    let with_subject = manifests.iter().filter(|(_, _, record)| record.subject.is_some()).count();
    if referrers != with_subject {
        return violation(format!("{referrers} referrer entries for {with_subject} manifests with a subject"));
    }
    Ok(())
}

/// Every manifest's blobs are recorded and held by the manifest's row, and
/// every manifest holder row belongs to a manifest that lists its blob.
fn check_blob_references(
    store: &dyn StateRead,
    manifests: &[(String, Digest, ManifestRecord)],
) -> Result<(), StoreError> {
    let mut listed = BTreeSet::new();
    for (repo, digest, record) in manifests {
        let holder = Holder::OciManifest { repo: repo.clone(), manifest: digest.clone() };
        for blob in &record.blobs {
            if !blobs::is_recorded(store, blob)? {
                return violation(format!("manifest {digest} of {repo} holds a blob with no record: {blob}"));
            }
            if !blobs::is_held_by(store, blob, &holder)? {
                return violation(format!("manifest {digest} of {repo} lists {blob} without its holder row"));
            }
            listed.insert((blob.clone(), holder.clone()));
        }
    }
    let mut stray = None;
    for_each_entry(store, &[tables::BLOB_REF], |key, _| {
        let (blob, holder) =
            blobs::row_parts(key).ok_or_else(|| StoreError(format!("malformed holder row {key:?}")))?;
        if matches!(holder, Holder::OciManifest { .. }) && !listed.contains(&(blob.clone(), holder.clone())) {
            stray = Some(format!("{holder:?} holds {blob} but no such manifest lists it"));
        }
        Ok(())
    })?;
    stray.map_or(Ok(()), violation)
}

/// Content is counted once per repository holding the manifest, and exists while one does.
fn check_contents(store: &dyn StateRead, manifests: &[(String, Digest, ManifestRecord)]) -> Result<(), StoreError> {
    let mut holders: BTreeMap<&Digest, u64> = BTreeMap::new();
    for (_, digest, _) in manifests {
        *holders.entry(digest).or_default() += 1;
    }
    for (digest, count) in &holders {
        let content = get_json::<ManifestContent>(store, &keys::content(digest))?;
        if content.as_ref().map(|content| content.refcount) != Some(*count) {
            return violation(format!("content of {digest} counts {:?}, held by {count}", content.map(|c| c.refcount)));
        }
    }
    let contents = count_entries(store, &[tables::OCI_CONTENT])?;
    if contents != holders.len() {
        return violation(format!("{contents} contents stored for {} held manifests", holders.len()));
    }
    Ok(())
}

/// Every tag points at a manifest of its repository.
fn check_tags(store: &dyn StateRead) -> Result<(), StoreError> {
    let mut dangling = None;
    for_each_entry(store, &[tables::OCI_TAG], |key, value| {
        let repo = keys::tag_repo_of(key).ok_or_else(|| StoreError("malformed tag key".into()))?;
        let tag: TagRecord = decode(value)?;
        if store.get(&keys::repo_manifest(repo, &tag.digest))?.is_none() {
            dangling = Some(format!("a tag of {repo} points at {}, which it does not hold", tag.digest));
        }
        Ok(())
    })?;
    dangling.map_or(Ok(()), violation)
}

/// Links and their reverse index match one for one, and a linked blob is recorded.
fn check_links(store: &dyn StateRead) -> Result<(), StoreError> {
    let mut reverse = BTreeSet::new();
    for_each_entry(store, &[tables::OCI_BLOB_LINK], |key, _| {
        reverse.insert(key.to_vec());
        Ok(())
    })?;
    let mut links = 0;
    let mut broken = None;
    for_each_entry(store, &[tables::OCI_REPO_BLOB], |key, _| {
        links += 1;
        let rest = &key[1..];
        let split = rest.iter().position(|&byte| byte == 0).ok_or_else(|| StoreError("malformed link".into()))?;
        let repo = std::str::from_utf8(&rest[..split]).map_err(|_| StoreError("malformed link".into()))?;
        let (digest, _) =
            Digest::from_key_bytes(&rest[split + 1..]).ok_or_else(|| StoreError("malformed link".into()))?;
        if !reverse.contains(&keys::blob_link(&digest, repo)) {
            broken = Some(format!("link of {digest} in {repo} has no reverse entry"));
        } else if !blobs::is_recorded(store, &digest)? {
            broken = Some(format!("{repo} links {digest}, which has no record"));
        }
        Ok(())
    })?;
    if let Some(message) = broken {
        return violation(message);
    }
    if links != reverse.len() {
        return violation(format!("{links} links, {} reverse entries", reverse.len()));
    }
    Ok(())
}
