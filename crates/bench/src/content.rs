//! Deterministic blob content: a seeded wyrand stream cut into fixed-size
//! chunks, so a blob can be generated twice (once to learn its digest, once to
//! send it) and never has to be held in memory whole.

use bytes::Bytes;
use sha2::{Digest as _, Sha256};

/// Bytes in every generated chunk but the last of a blob (1 MiB).
pub const CHUNK_BYTES: usize = 1 << 20;

/// One mebibyte, the unit every size and rate is reported in.
pub const MIB: u64 = 1 << 20;
/// One gibibyte.
pub const GIB: u64 = 1 << 30;

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

/// Checks bytes received in pieces of any size against a blob's generated
/// content, byte for byte, generating it alongside: an exact check that costs
/// a client far less CPU than SHA-256, so a pull measured with it shows the
/// registry's speed rather than the client's hashing.
pub struct ContentCheck {
    rng: WyRand,
    /// The current chunk of expected content, `at` bytes of it matched.
    expected: Vec<u8>,
    at: usize,
    /// Expected bytes not yet generated.
    remaining: u64,
}

impl ContentCheck {
    pub fn new(blob: &BlobSpec) -> Self {
        ContentCheck { rng: WyRand(blob.seed), expected: Vec::with_capacity(CHUNK_BYTES), at: 0, remaining: blob.size }
    }

    /// Whether `bytes` are the next bytes of the content (false past its end).
    pub fn matches(&mut self, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            if self.at == self.expected.len() && !self.next_chunk() {
                return false;
            }
            let take = bytes.len().min(self.expected.len() - self.at);
            if bytes[..take] != self.expected[self.at..self.at + take] {
                return false;
            }
            self.at += take;
            bytes = &bytes[take..];
        }
        true
    }

    /// Whether every byte of the content has been matched.
    pub fn is_complete(&self) -> bool {
        self.remaining == 0 && self.at == self.expected.len()
    }

    /// Generates the next chunk exactly as [`Chunks`] does; false at the end.
    fn next_chunk(&mut self) -> bool {
        if self.remaining == 0 {
            return false;
        }
        let len = self.remaining.min(CHUNK_BYTES as u64) as usize;
        self.remaining -= len as u64;
        self.expected.resize(len, 0);
        self.rng.fill(&mut self.expected);
        self.at = 0;
        true
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
    fn content_check_takes_the_content_in_pieces_of_any_size() {
        let blob = BlobSpec::new(9, 2 * CHUNK_BYTES as u64 + 21);
        let whole: Vec<u8> = blob.chunks().flat_map(|chunk| chunk.to_vec()).collect();
        for piece in [1, 7, 4096, CHUNK_BYTES - 1, CHUNK_BYTES + 5, whole.len()] {
            let mut check = ContentCheck::new(&blob);
            assert!(whole.chunks(piece).all(|part| check.matches(part)), "pieces of {piece}");
            assert!(check.is_complete(), "pieces of {piece}");
        }
    }

    #[test]
    fn content_check_rejects_a_changed_byte_a_short_body_and_extra_bytes() {
        let blob = BlobSpec::new(9, CHUNK_BYTES as u64 + 3);
        let whole: Vec<u8> = blob.chunks().flat_map(|chunk| chunk.to_vec()).collect();
        let mut changed = whole.clone();
        changed[CHUNK_BYTES + 1] ^= 1;
        assert!(!ContentCheck::new(&blob).matches(&changed));

        let mut short = ContentCheck::new(&blob);
        assert!(short.matches(&whole[..whole.len() - 1]));
        assert!(!short.is_complete());

        let mut long = ContentCheck::new(&blob);
        assert!(long.matches(&whole));
        assert!(!long.matches(b"x"));
    }

    #[test]
    fn empty_blob_has_no_chunks() {
        let blob = BlobSpec::new(1, 0);
        assert_eq!(blob.chunks().count(), 0);
        assert_eq!(blob.digest, sha256_digest(b""));
    }
}
