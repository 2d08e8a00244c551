//! The registry of table ids: the first byte of every key in the state.
//!
//! One line per table; the domains' key builders name these constants and
//! nothing else. Ids are never reused: a retired table keeps its line with a
//! note, since snapshots and logs of older releases may still hold its keys.
//!
//! ```text
//!   0x00 applied        (reserved for the openraft adapter)
//!   0x01-0x07           oci: repositories, blob links, manifests, tags, referrers
//!   0x08                identity: users
//!   0x09-0x0a           envelope: applied request ids and their expiry order
//!   0x0b-0x0d           system: settings, nodes, layout
//!   0x0e                oci: blob links by blob
//!   0x02, 0x0f-0x11     blobs: records, tombstones, gc state
//!   0x12                tasks
//!   0x13-0x14           blobs: holder rows, unreferenced blobs by time
//!   0x15-0x1d           identity: groups, memberships both ways, permission
//!                       targets and their subject index, credentials by
//!                       secret hash and by user, revoked tokens, revision
//! ```

/// One table: its id, name and owning domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableInfo {
    pub id: u8,
    pub name: &'static str,
    pub domain: &'static str,
}

pub const APPLIED: u8 = 0x00;
pub const OCI_REPO: u8 = 0x01;
pub const BLOB: u8 = 0x02;
pub const OCI_REPO_BLOB: u8 = 0x03;
pub const OCI_CONTENT: u8 = 0x04;
pub const OCI_REPO_MANIFEST: u8 = 0x05;
pub const OCI_TAG: u8 = 0x06;
pub const OCI_REFERRER: u8 = 0x07;
pub const USER: u8 = 0x08;
pub const REQUEST: u8 = 0x09;
pub const REQUEST_TIME: u8 = 0x0a;
pub const SETTINGS: u8 = 0x0b;
pub const NODE: u8 = 0x0c;
pub const LAYOUT: u8 = 0x0d;
pub const OCI_BLOB_LINK: u8 = 0x0e;
pub const TOMBSTONE: u8 = 0x0f;
pub const TOMBSTONE_EPOCH: u8 = 0x10;
pub const GC: u8 = 0x11;
pub const TASK: u8 = 0x12;
pub const BLOB_REF: u8 = 0x13;
pub const BLOB_UNREFERENCED: u8 = 0x14;
pub const GROUP: u8 = 0x15;
pub const GROUP_MEMBER: u8 = 0x16;
pub const USER_GROUP: u8 = 0x17;
pub const PERMISSION: u8 = 0x18;
pub const PERMISSION_SUBJECT: u8 = 0x19;
pub const CREDENTIAL: u8 = 0x1a;
pub const USER_CREDENTIAL: u8 = 0x1b;
pub const REVOKED_TOKEN: u8 = 0x1c;
pub const IDENTITY_REVISION: u8 = 0x1d;

/// Every table, in id order.
pub const TABLES: &[TableInfo] = &[
    TableInfo { id: APPLIED, name: "applied", domain: "raft" },
    TableInfo { id: OCI_REPO, name: "repo", domain: "oci" },
    TableInfo { id: BLOB, name: "blob", domain: "blobs" },
    TableInfo { id: OCI_REPO_BLOB, name: "repo_blob", domain: "oci" },
    TableInfo { id: OCI_CONTENT, name: "content", domain: "oci" },
    TableInfo { id: OCI_REPO_MANIFEST, name: "repo_manifest", domain: "oci" },
    TableInfo { id: OCI_TAG, name: "tag", domain: "oci" },
    TableInfo { id: OCI_REFERRER, name: "referrer", domain: "oci" },
    TableInfo { id: USER, name: "user", domain: "identity" },
    TableInfo { id: REQUEST, name: "request", domain: "envelope" },
    TableInfo { id: REQUEST_TIME, name: "request_time", domain: "envelope" },
    TableInfo { id: SETTINGS, name: "settings", domain: "system" },
    TableInfo { id: NODE, name: "node", domain: "system" },
    TableInfo { id: LAYOUT, name: "layout", domain: "system" },
    TableInfo { id: OCI_BLOB_LINK, name: "blob_link", domain: "oci" },
    TableInfo { id: TOMBSTONE, name: "tombstone", domain: "blobs" },
    TableInfo { id: TOMBSTONE_EPOCH, name: "tombstone_epoch", domain: "blobs" },
    TableInfo { id: GC, name: "gc", domain: "blobs" },
    TableInfo { id: TASK, name: "task", domain: "tasks" },
    TableInfo { id: BLOB_REF, name: "blob_ref", domain: "blobs" },
    TableInfo { id: BLOB_UNREFERENCED, name: "blob_unreferenced", domain: "blobs" },
    TableInfo { id: GROUP, name: "group", domain: "identity" },
    TableInfo { id: GROUP_MEMBER, name: "group_member", domain: "identity" },
    TableInfo { id: USER_GROUP, name: "user_group", domain: "identity" },
    TableInfo { id: PERMISSION, name: "permission", domain: "identity" },
    TableInfo { id: PERMISSION_SUBJECT, name: "permission_subject", domain: "identity" },
    TableInfo { id: CREDENTIAL, name: "credential", domain: "identity" },
    TableInfo { id: USER_CREDENTIAL, name: "user_credential", domain: "identity" },
    TableInfo { id: REVOKED_TOKEN, name: "revoked_token", domain: "identity" },
    TableInfo { id: IDENTITY_REVISION, name: "identity_revision", domain: "identity" },
];

/// The table a key belongs to.
pub fn of_key(key: &[u8]) -> Option<&'static TableInfo> {
    let id = *key.first()?;
    TABLES.iter().find(|table| table.id == id)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn table_ids_and_names_are_unique_and_listed_in_order() {
        let ids: Vec<u8> = TABLES.iter().map(|table| table.id).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(ids, sorted, "ids are unique and in order");
        let names: BTreeSet<&str> = TABLES.iter().map(|table| table.name).collect();
        assert_eq!(names.len(), TABLES.len(), "names are unique");
    }

    #[test]
    fn keys_find_their_table() {
        assert_eq!(of_key(&[TASK, b'x']).map(|table| table.name), Some("task"));
        assert_eq!(of_key(&[0xff]), None);
        assert_eq!(of_key(&[]), None);
    }
}
