//! Keys of the OCI tables.
//!
//! Composite keys join a repository name and a second part with a 0x00 byte;
//! repository names and tags (OCI grammar, checked at the edge) can never
//! contain it, so prefixes never collide (`a` + 0x00 sorts before `a/b`).

use flotilla_storage::Digest;

use crate::store::{key, tables};

const SEPARATOR: u8 = 0x00;

pub fn repo(repo: &str) -> Vec<u8> {
    key(tables::OCI_REPO, &[repo.as_bytes()])
}

/// The repository name inside a `repo` key.
pub fn repo_name_of(key: &[u8]) -> Option<&str> {
    std::str::from_utf8(key.get(1..)?).ok()
}

pub fn repo_blob(repo: &str, digest: &Digest) -> Vec<u8> {
    key(tables::OCI_REPO_BLOB, &[repo.as_bytes(), &[SEPARATOR], &digest.to_key_bytes()])
}

pub fn content(digest: &Digest) -> Vec<u8> {
    key(tables::OCI_CONTENT, &[&digest.to_key_bytes()])
}

pub fn repo_manifest(repo: &str, digest: &Digest) -> Vec<u8> {
    key(tables::OCI_REPO_MANIFEST, &[repo.as_bytes(), &[SEPARATOR], &digest.to_key_bytes()])
}

pub fn repo_manifest_prefix(repo: &str) -> Vec<u8> {
    key(tables::OCI_REPO_MANIFEST, &[repo.as_bytes(), &[SEPARATOR]])
}

/// Splits a `repo_manifest` key into its repository and digest.
pub fn repo_manifest_parts(key: &[u8]) -> Option<(&str, Digest)> {
    let rest = key.get(1..)?;
    let split = rest.iter().position(|&byte| byte == SEPARATOR)?;
    let repo = std::str::from_utf8(&rest[..split]).ok()?;
    let (digest, _) = Digest::from_key_bytes(&rest[split + 1..])?;
    Some((repo, digest))
}

pub fn tag(repo: &str, tag: &str) -> Vec<u8> {
    key(tables::OCI_TAG, &[repo.as_bytes(), &[SEPARATOR], tag.as_bytes()])
}

/// Prefix of every tag of `repo`.
pub fn tag_prefix(repo: &str) -> Vec<u8> {
    key(tables::OCI_TAG, &[repo.as_bytes(), &[SEPARATOR]])
}

/// The repository inside a `tag` key.
pub fn tag_repo_of(key: &[u8]) -> Option<&str> {
    let rest = key.get(1..)?;
    let split = rest.iter().position(|&byte| byte == SEPARATOR)?;
    std::str::from_utf8(&rest[..split]).ok()
}

/// The tag inside a `tag` key whose prefix is `tag_prefix(repo)`.
pub fn tag_name_of<'k>(key: &'k [u8], prefix: &[u8]) -> Option<&'k str> {
    std::str::from_utf8(key.strip_prefix(prefix)?).ok()
}

pub fn referrer(repo: &str, subject: &Digest, referrer: &Digest) -> Vec<u8> {
    let parts: [&[u8]; 4] = [repo.as_bytes(), &[SEPARATOR], &subject.to_key_bytes(), &referrer.to_key_bytes()];
    key(tables::OCI_REFERRER, &parts)
}

/// Prefix of every referrer of `subject` in `repo`.
pub fn referrer_prefix(repo: &str, subject: &Digest) -> Vec<u8> {
    key(tables::OCI_REFERRER, &[repo.as_bytes(), &[SEPARATOR], &subject.to_key_bytes()])
}

/// The referrer digest at the end of a `referrer` key with prefix `prefix`.
pub fn referrer_of(key: &[u8], prefix: &[u8]) -> Option<Digest> {
    let rest = key.strip_prefix(prefix)?;
    Digest::from_key_bytes(rest).map(|(digest, _)| digest)
}

/// The reverse of `repo_blob`: every repository a blob is linked in.
pub fn blob_link(digest: &Digest, repo: &str) -> Vec<u8> {
    key(tables::OCI_BLOB_LINK, &[&digest.to_key_bytes(), repo.as_bytes()])
}

/// Prefix of the `blob_link` keys of one blob.
pub fn blob_link_prefix(digest: &Digest) -> Vec<u8> {
    key(tables::OCI_BLOB_LINK, &[&digest.to_key_bytes()])
}

/// The repository inside a `blob_link` key whose prefix is `blob_link_prefix(digest)`.
pub fn blob_link_repo<'k>(key: &'k [u8], prefix: &[u8]) -> Option<&'k str> {
    std::str::from_utf8(key.strip_prefix(prefix)?).ok()
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
        assert_eq!(repo_manifest_parts(&repo_manifest("a/b", &d)), Some(("a/b", d.clone())));
        assert_eq!(tag_repo_of(&tag("a/b", "v1")), Some("a/b"));
    }

    #[test]
    fn blob_links_round_trip() {
        let d = Digest::sha256_of(b"x");
        let prefix = blob_link_prefix(&d);
        assert_eq!(blob_link_repo(&blob_link(&d, "a/b"), &prefix), Some("a/b"));
    }
}
