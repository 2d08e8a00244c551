//! Content digests (`algorithm:hex`), parsed once at the edge.
//!
//! Only `sha256` and `sha512` are accepted: they are the algorithms the OCI
//! image spec registers, and the only ones a content-addressed store can verify.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256, Sha512};

/// A digest algorithm registered by the OCI image spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    /// The name used in the `algorithm:hex` form.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the raw hash in bytes.
    pub fn hash_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 32,
            Algorithm::Sha512 => 64,
        }
    }

    /// One-byte tag used in binary keys.
    pub fn tag(self) -> u8 {
        match self {
            Algorithm::Sha256 => 1,
            Algorithm::Sha512 => 2,
        }
    }

    fn from_tag(tag: u8) -> Option<Self> {
        match tag {
            1 => Some(Algorithm::Sha256),
            2 => Some(Algorithm::Sha512),
            _ => None,
        }
    }
}

/// Why a string is not a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("digest has no `algorithm:` prefix")]
    MissingAlgorithm,
    #[error("unsupported digest algorithm `{0}`")]
    UnsupportedAlgorithm(String),
    #[error("digest hex has length {found}, expected {expected}")]
    BadLength { expected: usize, found: usize },
    #[error("digest hex must be lowercase hexadecimal")]
    BadHex,
}

/// A content digest such as `sha256:e3b0c442…`.
///
/// Stored as the algorithm and the raw hash bytes; displayed and serialized
/// in the canonical lowercase `algorithm:hex` form.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hash: Box<[u8]>,
}

impl Digest {
    /// Parses `algorithm:hex`; hex must be lowercase and of the algorithm's length.
    pub fn parse(text: &str) -> Result<Self, DigestError> {
        let (algorithm, hex_part) = text.split_once(':').ok_or(DigestError::MissingAlgorithm)?;
        let algorithm = match algorithm {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other => return Err(DigestError::UnsupportedAlgorithm(truncate(other, 32))),
        };
        let expected = algorithm.hash_len() * 2;
        if hex_part.len() != expected {
            return Err(DigestError::BadLength { expected, found: hex_part.len() });
        }
        if !hex_part.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(DigestError::BadHex);
        }
        let hash = hex::decode(hex_part).map_err(|_| DigestError::BadHex)?;
        Ok(Digest { algorithm, hash: hash.into_boxed_slice() })
    }

    /// Builds a digest from raw hash bytes.
    pub fn from_raw(algorithm: Algorithm, hash: &[u8]) -> Self {
        assert_eq!(hash.len(), algorithm.hash_len(), "raw hash length must match the algorithm");
        Digest { algorithm, hash: hash.into() }
    }

    /// The sha256 digest of `data`.
    pub fn sha256_of(data: &[u8]) -> Self {
        Digest::from_raw(Algorithm::Sha256, &Sha256::digest(data))
    }

    /// The digest of `data` with `algorithm`.
    pub fn compute(algorithm: Algorithm, data: &[u8]) -> Self {
        let mut hasher = Hasher::new(algorithm);
        hasher.update(data);
        hasher.finish()
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The raw hash bytes.
    pub fn hash(&self) -> &[u8] {
        &self.hash
    }

    /// Lowercase hex of the hash, without the algorithm.
    pub fn hex(&self) -> String {
        hex::encode(&self.hash)
    }

    /// A compact binary form for keys: one algorithm tag byte, then the raw hash.
    /// Sorts like the hash within one algorithm.
    pub fn to_key_bytes(&self) -> Vec<u8> {
        let mut key = Vec::with_capacity(1 + self.hash.len());
        key.push(self.algorithm.tag());
        key.extend_from_slice(&self.hash);
        key
    }

    /// Inverse of [`Digest::to_key_bytes`]; returns the digest and the bytes consumed.
    pub fn from_key_bytes(bytes: &[u8]) -> Option<(Self, usize)> {
        let algorithm = Algorithm::from_tag(*bytes.first()?)?;
        let end = 1 + algorithm.hash_len();
        let hash = bytes.get(1..end)?;
        Some((Digest::from_raw(algorithm, hash), end))
    }
}

fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Digest::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// An incremental hasher for one of the supported algorithms.
#[derive(Clone)]
pub enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    pub fn finish(self) -> Digest {
        match self {
            Hasher::Sha256(h) => Digest::from_raw(Algorithm::Sha256, &h.finalize()),
            Hasher::Sha512(h) => Digest::from_raw(Algorithm::Sha512, &h.finalize()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_displays_the_empty_digest() {
        let digest = Digest::parse(EMPTY).unwrap();
        assert_eq!(digest.to_string(), EMPTY);
        assert_eq!(digest, Digest::sha256_of(b""));
    }

    #[test]
    fn rejects_malformed_digests() {
        assert_eq!(Digest::parse("e3b0"), Err(DigestError::MissingAlgorithm));
        assert!(matches!(Digest::parse("md5:abcd"), Err(DigestError::UnsupportedAlgorithm(_))));
        assert!(matches!(Digest::parse("sha256:abcd"), Err(DigestError::BadLength { .. })));
        let upper = EMPTY.to_uppercase().replace("SHA256", "sha256");
        assert_eq!(Digest::parse(&upper), Err(DigestError::BadHex));
        assert!(Digest::parse("sha256:../../etc/passwd").is_err());
    }

    proptest! {
        #[test]
        fn display_parse_round_trips(bytes in proptest::collection::vec(any::<u8>(), 32)) {
            let digest = Digest::from_raw(Algorithm::Sha256, &bytes);
            prop_assert_eq!(Digest::parse(&digest.to_string()).unwrap(), digest.clone());
            let key = digest.to_key_bytes();
            prop_assert_eq!(Digest::from_key_bytes(&key).unwrap(), (digest, 33));
        }

        #[test]
        fn parse_never_panics(text in ".{0,140}") {
            let _ = Digest::parse(&text);
        }

        #[test]
        fn parse_accepts_only_canonical_text(text in "(sha256|sha512|md5):[0-9a-fA-F]{0,130}") {
            if let Ok(digest) = Digest::parse(&text) {
                prop_assert_eq!(digest.to_string(), text);
            }
        }
    }
}
