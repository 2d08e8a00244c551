//! What every domain's apply receives: the store and the proposer's time.

use super::{KeyValues, StateRead, StateWrite, StoreError};

/// One command's view of the state: writes land in the batch the command's
/// entry is applied in, and `now_ms` is the proposer's clock (apply never
/// reads one).
pub struct Tx<'s> {
    store: &'s mut dyn StateWrite,
    /// Milliseconds since the Unix epoch, chosen by the proposer.
    pub now_ms: u64,
}

impl<'s> Tx<'s> {
    pub fn new(store: &'s mut dyn StateWrite, now_ms: u64) -> Self {
        Tx { store, now_ms }
    }
}

impl StateRead for Tx<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.get(key)
    }

    fn scan(&self, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<KeyValues, StoreError> {
        self.store.scan(prefix, after, limit)
    }
}

impl StateWrite for Tx<'_> {
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.store.put(key, value);
    }

    fn delete(&mut self, key: &[u8]) {
        self.store.delete(key);
    }
}
