//! The key-value view every domain's `apply` writes and every reader reads.
//!
//! One ordered key space (RocksDB's column family `sm` on a node, a
//! `BTreeMap` in tests); the first byte of a key is its table
//! ([`tables`]). Records are JSON values; [`get_json`] and [`put_json`] are the
//! only places that encode them.

pub mod codec;
pub mod memory;
pub mod tables;
mod tx;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use memory::MemoryState;
pub use tx::Tx;

/// Page size for scans inside apply and the readers.
pub(crate) const SCAN_PAGE: usize = 512;

/// An I/O failure of the store under the state machine; fatal for the replica.
#[derive(Debug, Clone, thiserror::Error)]
#[error("state store: {0}")]
pub struct StoreError(pub String);

/// Entries of a scan, in key order.
pub type KeyValues = Vec<(Vec<u8>, Vec<u8>)>;

/// Read access to the state machine's key space.
pub trait StateRead {
    /// The value at `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Up to `limit` entries whose key starts with `prefix`, in key order,
    /// beginning strictly after `after` (a full key) when given.
    fn scan(&self, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<KeyValues, StoreError>;
}

/// Write access; writes are visible to later reads through the same view.
pub trait StateWrite: StateRead {
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>);
    fn delete(&mut self, key: &[u8]);
}

/// A readable state that can also hand out a consistent point-in-time view of
/// itself, so that a query reading several keys never sees half a write.
pub trait StateSource: StateRead + Send + Sync {
    /// A view of the state as it is now; later applies do not show through it.
    fn snapshot(&self) -> Box<dyn StateRead + '_>;
}

/// What a reader reads: a borrowed state (inside apply, in tests) or a
/// point-in-time snapshot it owns.
pub enum View<'s> {
    Borrowed(&'s dyn StateRead),
    Snapshot(Box<dyn StateRead + 's>),
}

impl<'s> std::ops::Deref for View<'s> {
    type Target = dyn StateRead + 's;

    fn deref(&self) -> &Self::Target {
        match self {
            View::Borrowed(store) => *store,
            View::Snapshot(store) => &**store,
        }
    }
}

impl<'s> From<&'s dyn StateRead> for View<'s> {
    fn from(store: &'s dyn StateRead) -> Self {
        View::Borrowed(store)
    }
}

impl<'s> From<Box<dyn StateRead + 's>> for View<'s> {
    fn from(store: Box<dyn StateRead + 's>) -> Self {
        View::Snapshot(store)
    }
}

/// Reads and decodes a JSON record.
pub fn get_json<T: DeserializeOwned>(store: &(impl StateRead + ?Sized), key: &[u8]) -> Result<Option<T>, StoreError> {
    store.get(key)?.map(|bytes| decode(&bytes)).transpose()
}

/// Decodes a JSON record.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|error| StoreError(format!("corrupt record: {error}")))
}

/// Encodes and stores a JSON record.
pub fn put_json<T: Serialize>(store: &mut (impl StateWrite + ?Sized), key: Vec<u8>, value: &T) {
    let bytes = serde_json::to_vec(value).expect("records serialize to JSON");
    store.put(key, bytes);
}

/// Calls `visit` on every entry under `prefix`, in key order, a page at a time.
pub fn for_each_entry<S: StateRead + ?Sized>(
    store: &S,
    prefix: &[u8],
    mut visit: impl FnMut(&[u8], &[u8]) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = store.scan(prefix, after.as_deref(), SCAN_PAGE)?;
        let done = page.len() < SCAN_PAGE;
        for (key, value) in page {
            visit(&key, &value)?;
            after = Some(key);
        }
        if done {
            return Ok(());
        }
    }
}

/// The number of entries under `prefix` (a full scan: for invariant checks, not serving).
pub fn count_entries<S: StateRead + ?Sized>(store: &S, prefix: &[u8]) -> Result<usize, StoreError> {
    let mut count = 0;
    for_each_entry(store, prefix, |_, _| {
        count += 1;
        Ok(())
    })?;
    Ok(count)
}

/// A key: its table byte followed by `parts`.
pub(crate) fn key(table: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len = 1 + parts.iter().map(|p| p.len()).sum::<usize>();
    let mut key = Vec::with_capacity(len);
    key.push(table);
    for part in parts {
        key.extend_from_slice(part);
    }
    key
}
