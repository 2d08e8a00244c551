//! A bounded cache of recently verified Basic credentials, so that steady-state
//! requests do not pay argon2 on every call.
//!
//! The key hashes the user, the password and the stored PHC string together: a
//! password change (new PHC) or a different password never hits an old entry,
//! and the cache holds no password in the clear. Only successes are inserted.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sha2::{Digest, Sha256};

/// Entries kept at most; bounds memory at well under 1 MiB.
pub(crate) const CREDENTIAL_CACHE_CAPACITY: usize = 10_000;
/// How long a verified credential is trusted without argon2 again.
pub(crate) const CREDENTIAL_CACHE_TTL: Duration = Duration::from_secs(5 * 60);

/// The cache key of one (user, password, stored hash) triple.
pub(crate) type CacheKey = [u8; 32];

/// Verified credentials, keyed by [`CredentialCache::key`], with their insertion time.
pub(crate) struct CredentialCache {
    entries: Mutex<HashMap<CacheKey, Instant>>,
    capacity: usize,
    ttl: Duration,
}

impl CredentialCache {
    pub(crate) fn new(capacity: usize, ttl: Duration) -> Self {
        CredentialCache { entries: Mutex::new(HashMap::new()), capacity, ttl }
    }

    /// SHA-256 over the length-prefixed parts (length prefixes keep
    /// `("a\0b", "c")` and `("a", "b\0c")` apart).
    pub(crate) fn key(user: &str, password: &str, phc: &str) -> CacheKey {
        let mut hasher = Sha256::new();
        for part in [user, password, phc] {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        hasher.finalize().into()
    }

    /// Whether `key` was verified less than the TTL ago; drops it if stale.
    pub(crate) fn contains(&self, key: &CacheKey) -> bool {
        let mut entries = self.entries.lock();
        match entries.get(key) {
            Some(inserted) if inserted.elapsed() < self.ttl => true,
            Some(_) => {
                entries.remove(key);
                false
            }
            None => false,
        }
    }

    /// Records a successful verification, evicting stale then oldest entries when full.
    pub(crate) fn insert(&self, key: CacheKey) {
        let mut entries = self.entries.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            let ttl = self.ttl;
            entries.retain(|_, inserted| inserted.elapsed() < ttl);
        }
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            let oldest = entries.iter().min_by_key(|(_, inserted)| **inserted).map(|(key, _)| *key);
            if let Some(oldest) = oldest {
                entries.remove(&oldest);
            }
        }
        entries.insert(key, Instant::now());
    }

    /// Number of entries, stale ones included.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_depends_on_every_part() {
        let base = CredentialCache::key("alice", "pw", "$phc1");
        assert_ne!(base, CredentialCache::key("alice", "pw", "$phc2"));
        assert_ne!(base, CredentialCache::key("alice", "pw2", "$phc1"));
        assert_ne!(base, CredentialCache::key("bob", "pw", "$phc1"));
        assert_ne!(CredentialCache::key("a\0b", "c", ""), CredentialCache::key("a", "b\0c", ""));
    }

    #[test]
    fn bounded_and_evicts_oldest() {
        let cache = CredentialCache::new(3, Duration::from_secs(60));
        let keys: Vec<CacheKey> = (0..4u8).map(|i| [i; 32]).collect();
        for key in &keys {
            cache.insert(*key);
        }
        assert_eq!(cache.len(), 3);
        assert!(!cache.contains(&keys[0]));
        assert!(keys[1..].iter().all(|key| cache.contains(key)));
    }

    #[test]
    fn stale_entries_miss() {
        let cache = CredentialCache::new(3, Duration::ZERO);
        cache.insert([1; 32]);
        assert!(!cache.contains(&[1; 32]));
        assert_eq!(cache.len(), 0);
    }
}
