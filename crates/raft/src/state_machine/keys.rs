//! Typed keys of the state machine's tables (see the table in the parent module).
//!
//! Composite keys join a repository name and a second part with a 0x00 byte;
//! repository names and tags can never contain it, so prefixes never collide
//! (`a` + 0x00 sorts before `a/b`).

use flotilla_storage::Digest;

use crate::command::RequestId;
use crate::types::NodeId;

/// Table prefixes. 0x00 is reserved for the openraft adapter's applied state.
pub mod table {
    pub const APPLIED: u8 = 0x00;
    pub const REPO: u8 = 0x01;
    pub const BLOB: u8 = 0x02;
    pub const REPO_BLOB: u8 = 0x03;
    pub const CONTENT: u8 = 0x04;
    pub const REPO_MANIFEST: u8 = 0x05;
    pub const TAG: u8 = 0x06;
    pub const REFERRER: u8 = 0x07;
    pub const USER: u8 = 0x08;
    pub const REQUEST: u8 = 0x09;
    pub const REQUEST_TIME: u8 = 0x0a;
    pub const SETTINGS: u8 = 0x0b;
    pub const NODE: u8 = 0x0c;
    pub const LAYOUT: u8 = 0x0d;
    pub const BLOB_LINK: u8 = 0x0e;
    pub const TOMBSTONE: u8 = 0x0f;
    pub const TOMBSTONE_EPOCH: u8 = 0x10;
    pub const GC: u8 = 0x11;
    pub const TASK: u8 = 0x12;
}

const SEPARATOR: u8 = 0x00;

fn with_prefix(table: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len = 1 + parts.iter().map(|p| p.len()).sum::<usize>();
    let mut key = Vec::with_capacity(len);
    key.push(table);
    for part in parts {
        key.extend_from_slice(part);
    }
    key
}

pub fn repo(repo: &str) -> Vec<u8> {
    with_prefix(table::REPO, &[repo.as_bytes()])
}

/// Prefix of every repository key.
pub fn repo_prefix() -> Vec<u8> {
    vec![table::REPO]
}

/// The repository name inside a `repo` key.
pub fn repo_name_of(key: &[u8]) -> Option<&str> {
    std::str::from_utf8(key.get(1..)?).ok()
}

pub fn blob(digest: &Digest) -> Vec<u8> {
    with_prefix(table::BLOB, &[&digest.to_key_bytes()])
}

pub fn blob_prefix() -> Vec<u8> {
    vec![table::BLOB]
}

pub fn repo_blob(repo: &str, digest: &Digest) -> Vec<u8> {
    with_prefix(table::REPO_BLOB, &[repo.as_bytes(), &[SEPARATOR], &digest.to_key_bytes()])
}

pub fn content(digest: &Digest) -> Vec<u8> {
    with_prefix(table::CONTENT, &[&digest.to_key_bytes()])
}

pub fn repo_manifest(repo: &str, digest: &Digest) -> Vec<u8> {
    with_prefix(table::REPO_MANIFEST, &[repo.as_bytes(), &[SEPARATOR], &digest.to_key_bytes()])
}

pub fn repo_manifest_prefix(repo: &str) -> Vec<u8> {
    with_prefix(table::REPO_MANIFEST, &[repo.as_bytes(), &[SEPARATOR]])
}

pub fn tag(repo: &str, tag: &str) -> Vec<u8> {
    with_prefix(table::TAG, &[repo.as_bytes(), &[SEPARATOR], tag.as_bytes()])
}

/// Prefix of every tag of `repo`.
pub fn tag_prefix(repo: &str) -> Vec<u8> {
    with_prefix(table::TAG, &[repo.as_bytes(), &[SEPARATOR]])
}

/// The tag inside a `tag` key whose prefix is `tag_prefix(repo)`.
pub fn tag_name_of<'k>(key: &'k [u8], prefix: &[u8]) -> Option<&'k str> {
    std::str::from_utf8(key.strip_prefix(prefix)?).ok()
}

pub fn referrer(repo: &str, subject: &Digest, referrer: &Digest) -> Vec<u8> {
    with_prefix(table::REFERRER, &[repo.as_bytes(), &[SEPARATOR], &subject.to_key_bytes(), &referrer.to_key_bytes()])
}

/// Prefix of every referrer of `subject` in `repo`.
pub fn referrer_prefix(repo: &str, subject: &Digest) -> Vec<u8> {
    with_prefix(table::REFERRER, &[repo.as_bytes(), &[SEPARATOR], &subject.to_key_bytes()])
}

/// The referrer digest at the end of a `referrer` key with prefix `prefix`.
pub fn referrer_of(key: &[u8], prefix: &[u8]) -> Option<Digest> {
    let rest = key.strip_prefix(prefix)?;
    Digest::from_key_bytes(rest).map(|(digest, _)| digest)
}

pub fn user(name: &str) -> Vec<u8> {
    with_prefix(table::USER, &[name.as_bytes()])
}

pub fn user_prefix() -> Vec<u8> {
    vec![table::USER]
}

pub fn request(id: RequestId) -> Vec<u8> {
    with_prefix(table::REQUEST, &[&id.0.to_be_bytes()])
}

pub fn request_time(time_ms: u64, id: RequestId) -> Vec<u8> {
    with_prefix(table::REQUEST_TIME, &[&time_ms.to_be_bytes(), &id.0.to_be_bytes()])
}

pub fn request_time_prefix() -> Vec<u8> {
    vec![table::REQUEST_TIME]
}

/// Splits a `request_time` key into its time and request id.
pub fn request_time_parts(key: &[u8]) -> Option<(u64, RequestId)> {
    let time = u64::from_be_bytes(key.get(1..9)?.try_into().ok()?);
    let id = u128::from_be_bytes(key.get(9..25)?.try_into().ok()?);
    Some((time, RequestId(id)))
}

pub fn settings() -> Vec<u8> {
    with_prefix(table::SETTINGS, &[b"cluster"])
}

pub fn node(id: NodeId) -> Vec<u8> {
    with_prefix(table::NODE, &[&id.to_be_bytes()])
}

pub fn node_prefix() -> Vec<u8> {
    vec![table::NODE]
}

pub fn layout() -> Vec<u8> {
    with_prefix(table::LAYOUT, &[b"current"])
}

/// The reverse of `repo_blob`: every repository a blob is linked in.
pub fn blob_link(digest: &Digest, repo: &str) -> Vec<u8> {
    with_prefix(table::BLOB_LINK, &[&digest.to_key_bytes(), repo.as_bytes()])
}

/// Prefix of the `blob_link` keys of one blob.
pub fn blob_link_prefix(digest: &Digest) -> Vec<u8> {
    with_prefix(table::BLOB_LINK, &[&digest.to_key_bytes()])
}

/// The repository inside a `blob_link` key whose prefix is `blob_link_prefix(digest)`.
pub fn blob_link_repo<'k>(key: &'k [u8], prefix: &[u8]) -> Option<&'k str> {
    std::str::from_utf8(key.strip_prefix(prefix)?).ok()
}

/// The digest inside a `blob` key.
pub fn blob_digest_of(key: &[u8]) -> Option<Digest> {
    Digest::from_key_bytes(key.get(1..)?).map(|(digest, _)| digest)
}

pub fn tombstone(digest: &Digest) -> Vec<u8> {
    with_prefix(table::TOMBSTONE, &[&digest.to_key_bytes()])
}

/// Tombstones in the order of the collections that made them.
pub fn tombstone_epoch(epoch: u64, digest: &Digest) -> Vec<u8> {
    with_prefix(table::TOMBSTONE_EPOCH, &[&epoch.to_be_bytes(), &digest.to_key_bytes()])
}

pub fn tombstone_epoch_prefix() -> Vec<u8> {
    vec![table::TOMBSTONE_EPOCH]
}

/// Splits a `tombstone_epoch` key into its epoch and digest.
pub fn tombstone_epoch_parts(key: &[u8]) -> Option<(u64, Digest)> {
    let epoch = u64::from_be_bytes(key.get(1..9)?.try_into().ok()?);
    let (digest, _) = Digest::from_key_bytes(key.get(9..)?)?;
    Some((epoch, digest))
}

pub fn gc_state() -> Vec<u8> {
    with_prefix(table::GC, &[b"state"])
}

pub fn task(id: &str) -> Vec<u8> {
    with_prefix(table::TASK, &[id.as_bytes()])
}

pub fn task_prefix() -> Vec<u8> {
    vec![table::TASK]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_prefixes_do_not_collide() {
        let d = Digest::sha256_of(b"x");
        let short = repo_manifest("a", &d);
        assert!(short.starts_with(&repo_manifest_prefix("a")));
        assert!(!repo_manifest("a/b", &d).starts_with(&repo_manifest_prefix("a")));
    }

    #[test]
    fn tombstone_keys_sort_by_epoch_and_round_trip() {
        let d = Digest::sha256_of(b"x");
        let (first, second) = (tombstone_epoch(1, &d), tombstone_epoch(2, &Digest::sha256_of(b"a")));
        assert!(first < second);
        assert_eq!(tombstone_epoch_parts(&first), Some((1, d.clone())));
        assert_eq!(blob_digest_of(&blob(&d)), Some(d.clone()));
        let prefix = blob_link_prefix(&d);
        assert_eq!(blob_link_repo(&blob_link(&d, "a/b"), &prefix), Some("a/b"));
    }

    #[test]
    fn request_time_keys_round_trip_and_sort_by_time() {
        let early = request_time(5, RequestId(u128::MAX));
        let late = request_time(6, RequestId(0));
        assert!(early < late);
        assert_eq!(request_time_parts(&early), Some((5, RequestId(u128::MAX))));
    }
}
