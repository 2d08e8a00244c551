//! An in-memory state store: what property tests drive, and the state behind
//! the in-memory metadata service that handler tests use.

use std::collections::BTreeMap;

use super::{KeyValues, StateRead, StateSource, StateWrite, StoreError};

/// A `BTreeMap` key-value view with the same ordering as RocksDB.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MemoryState {
    pub entries: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl StateRead for MemoryState {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.entries.get(key).cloned())
    }

    fn scan(&self, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<KeyValues, StoreError> {
        use std::ops::Bound;
        let start = match after {
            Some(after) => Bound::Excluded(after.to_vec()),
            None => Bound::Included(prefix.to_vec()),
        };
        Ok(self
            .entries
            .range((start, Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
            .take(limit)
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect())
    }
}

impl StateWrite for MemoryState {
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.entries.insert(key, value);
    }

    fn delete(&mut self, key: &[u8]) {
        self.entries.remove(key);
    }
}

impl StateSource for MemoryState {
    fn snapshot(&self) -> Box<dyn StateRead + '_> {
        // A shared borrow already excludes writes for as long as the view lives.
        Box::new(self)
    }
}

impl StateRead for &MemoryState {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).get(key)
    }

    fn scan(&self, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<KeyValues, StoreError> {
        (**self).scan(prefix, after, limit)
    }
}
