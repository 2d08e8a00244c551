//! Deterministic blob content: a seeded wyrand stream cut into fixed-size
//! chunks, so a blob can be generated twice (once to learn its digest, once to
//! send it) and never has to be held in memory whole.

use bytes::Bytes;
use sha2::{Digest as _, Sha256};

/// Bytes in every generated chunk but the last of a blob (1 MiB).
pub const CHUNK_BYTES: usize = 1 << 20;

/// One mebibyte, the unit every size and rate is reported in.
pub const MIB: u64 = 1 << 20;

/// A blob that exists only as a seed and a size, plus its precomputed digest.
#[derive(Debug, Clone)]
pub struct BlobSpec {
    pub seed: u64,
    pub size: u64,
    /// `sha256:<hex>` of the content [`BlobSpec::chunks`] yields.
    pub digest: String,
}

impl BlobSpec {
    /// Generates the content once to compute its digest (CPU-bound: call it
    /// from a blocking thread for large sizes).
    pub fn new(seed: u64, size: u64) -> Self {
        let mut hasher = Sha256::new();
        for chunk in Chunks::new(seed, size) {
            hasher.update(&chunk);
        }
        BlobSpec { seed, size, digest: format!("sha256:{}", hex::encode(hasher.finalize())) }
    }

    /// The content, chunk by chunk, generated afresh on every call.
    pub fn chunks(&self) -> Chunks {
        Chunks::new(self.seed, self.size)
    }
}

/// Iterator over the chunks of one generated blob.
pub struct Chunks {
    rng: WyRand,
    remaining: u64,
}

impl Chunks {
    fn new(seed: u64, size: u64) -> Self {
        Chunks { rng: WyRand(seed), remaining: size }
    }
}

impl Iterator for Chunks {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        if self.remaining == 0 {
            return None;
        }
        let len = self.remaining.min(CHUNK_BYTES as u64) as usize;
        self.remaining -= len as u64;
        let mut chunk = vec![0; len];
        self.rng.fill(&mut chunk);
        Some(Bytes::from(chunk))
    }
}

/// `len` pseudo-random bytes from `seed`.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    WyRand(seed).fill(&mut bytes);
    bytes
}

/// The OCI digest (`sha256:<hex>`) of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// wyrand: a tiny, fast, statistically decent PRNG (not cryptographic).
struct WyRand(u64);

impl WyRand {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let product = u128::from(self.0) * u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db);
        ((product >> 64) ^ product) as u64
    }

    fn fill(&mut self, buf: &mut [u8]) {
        let mut words = buf.chunks_exact_mut(8);
        for word in &mut words {
            word.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let tail = words.into_remainder();
        if !tail.is_empty() {
            let last = self.next_u64().to_le_bytes();
            tail.copy_from_slice(&last[..tail.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matches_the_concatenated_chunks() {
        let size = 2 * CHUNK_BYTES as u64 + 13;
        let blob = BlobSpec::new(7, size);
        let whole: Vec<u8> = blob.chunks().flat_map(|chunk| chunk.to_vec()).collect();
        assert_eq!(whole.len() as u64, size);
        assert_eq!(sha256_digest(&whole), blob.digest);
    }

    #[test]
    fn content_depends_on_the_seed_only() {
        assert_eq!(BlobSpec::new(1, 1000).digest, BlobSpec::new(1, 1000).digest);
        assert_ne!(BlobSpec::new(1, 1000).digest, BlobSpec::new(2, 1000).digest);
        assert_eq!(random_bytes(3, 10), random_bytes(3, 10));
    }

    #[test]
    fn empty_blob_has_no_chunks() {
        let blob = BlobSpec::new(1, 0);
        assert_eq!(blob.chunks().count(), 0);
        assert_eq!(blob.digest, sha256_digest(b""));
    }
}
