//! Order-preserving tuple keys for names that may hold any byte.
//!
//! A string (or any byte string) is written with each `0x00` escaped as
//! `0x00 0xFF` and ended by `0x00 0x01` (the FoundationDB / CockroachDB
//! scheme); integers are big-endian; a digest is its algorithm tag and raw
//! hash. Then:
//! - the encoding of a tuple sorts like the tuple (byte order of its
//!   strings, numeric order of its integers), so ordered listings are scans;
//! - the encoding of a prefix of a tuple is a prefix of its encoding, and
//!   `prefix("group")` is never a prefix of anything under `"group2"`;
//! - decoding gives back exactly what was encoded.
//!
//! The tables the OCI domain had before this encoding keep their `0x00`
//! separated keys (OCI names never contain 0x00); every new table uses this.

use flotilla_storage::Digest;

const ESCAPE: u8 = 0x00;
const ESCAPED_ZERO: u8 = 0xFF;
const TERMINATOR: u8 = 0x01;

/// Builds a key from parts, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyWriter {
    bytes: Vec<u8>,
}

impl KeyWriter {
    /// A key of `table`.
    pub fn table(table: u8) -> Self {
        KeyWriter { bytes: vec![table] }
    }

    /// Appends a byte string (any bytes), escaped and terminated.
    pub fn bytes(mut self, part: &[u8]) -> Self {
        for &byte in part {
            self.bytes.push(byte);
            if byte == ESCAPE {
                self.bytes.push(ESCAPED_ZERO);
            }
        }
        self.bytes.extend_from_slice(&[ESCAPE, TERMINATOR]);
        self
    }

    /// Appends a string.
    pub fn str(self, part: &str) -> Self {
        self.bytes(part.as_bytes())
    }

    /// Appends an integer, big-endian (sorts numerically).
    pub fn u64(mut self, part: u64) -> Self {
        self.bytes.extend_from_slice(&part.to_be_bytes());
        self
    }

    /// Appends one byte (an enum tag).
    pub fn tag(mut self, tag: u8) -> Self {
        self.bytes.push(tag);
        self
    }

    /// Appends a digest: algorithm tag and raw hash (self-delimiting).
    pub fn digest(mut self, digest: &Digest) -> Self {
        self.bytes.extend_from_slice(&digest.to_key_bytes());
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

/// Reads the parts of a key back, in the order they were written.
#[derive(Debug, Clone)]
pub struct KeyReader<'k> {
    rest: &'k [u8],
}

impl<'k> KeyReader<'k> {
    /// Reads a key of `table`; `None` if the key is of another table.
    pub fn table(key: &'k [u8], table: u8) -> Option<Self> {
        match key.split_first() {
            Some((&first, rest)) if first == table => Some(KeyReader { rest }),
            _ => None,
        }
    }

    /// Reads the rest of a key whose leading bytes were already read.
    pub fn new(rest: &'k [u8]) -> Self {
        KeyReader { rest }
    }

    pub fn bytes(&mut self) -> Option<Vec<u8>> {
        let mut part = Vec::new();
        let mut index = 0;
        loop {
            let byte = *self.rest.get(index)?;
            if byte != ESCAPE {
                part.push(byte);
                index += 1;
                continue;
            }
            match *self.rest.get(index + 1)? {
                ESCAPED_ZERO => part.push(ESCAPE),
                TERMINATOR => {
                    self.rest = &self.rest[index + 2..];
                    return Some(part);
                }
                _ => return None,
            }
            index += 2;
        }
    }

    pub fn str(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?).ok()
    }

    pub fn u64(&mut self) -> Option<u64> {
        let (bytes, rest) = self.rest.split_first_chunk::<8>()?;
        self.rest = rest;
        Some(u64::from_be_bytes(*bytes))
    }

    pub fn tag(&mut self) -> Option<u8> {
        let (&tag, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(tag)
    }

    pub fn digest(&mut self) -> Option<Digest> {
        let (digest, used) = Digest::from_key_bytes(self.rest)?;
        self.rest = &self.rest[used..];
        Some(digest)
    }

    /// Whether every byte was read.
    pub fn is_done(&self) -> bool {
        self.rest.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn encode(parts: &[Vec<u8>]) -> Vec<u8> {
        parts.iter().fold(KeyWriter::table(7), |key, part| key.bytes(part)).finish()
    }

    #[test]
    fn a_name_never_prefixes_a_longer_name() {
        let group = KeyWriter::table(1).str("group").finish();
        let group2 = KeyWriter::table(1).str("group2").str("x").finish();
        let inside = KeyWriter::table(1).str("group").str("x").finish();
        assert!(!group2.starts_with(&group));
        assert!(inside.starts_with(&group));
    }

    #[test]
    fn zero_bytes_round_trip_and_keep_order() {
        let names: [&[u8]; 4] = [b"a", b"a\x00", b"a\x00\x00b", b"a\x01"];
        let keys: Vec<Vec<u8>> = names.iter().map(|name| KeyWriter::table(1).bytes(name).finish()).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        for (name, key) in names.iter().zip(&keys) {
            let mut reader = KeyReader::table(key, 1).unwrap();
            assert_eq!(reader.bytes().as_deref(), Some(*name));
            assert!(reader.is_done());
        }
    }

    #[test]
    fn mixed_parts_round_trip() {
        let digest = Digest::sha256_of(b"x");
        let key = KeyWriter::table(3).str("repo/a").u64(42).tag(2).digest(&digest).str("").finish();
        let mut reader = KeyReader::table(&key, 3).unwrap();
        assert_eq!(reader.str().as_deref(), Some("repo/a"));
        assert_eq!(reader.u64(), Some(42));
        assert_eq!(reader.tag(), Some(2));
        assert_eq!(reader.digest(), Some(digest));
        assert_eq!(reader.str().as_deref(), Some(""));
        assert!(reader.is_done());
        assert!(KeyReader::table(&key, 4).is_none());
    }

    proptest! {
        #[test]
        fn tuples_round_trip(parts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..12), 0..5)) {
            let key = encode(&parts);
            let mut reader = KeyReader::table(&key, 7).unwrap();
            for part in &parts {
                let read = reader.bytes();
                prop_assert_eq!(read.as_ref(), Some(part));
            }
            prop_assert!(reader.is_done());
        }

        #[test]
        fn encoding_sorts_like_the_tuples(
            a in proptest::collection::vec(proptest::collection::vec(0u8..4, 0..6), 1..4),
            b in proptest::collection::vec(proptest::collection::vec(0u8..4, 0..6), 1..4),
        ) {
            prop_assert_eq!(encode(&a).cmp(&encode(&b)), a.cmp(&b));
        }

        #[test]
        fn a_tuple_prefix_is_a_key_prefix_only_when_it_is_one(
            a in proptest::collection::vec(proptest::collection::vec(0u8..3, 0..4), 0..4),
            b in proptest::collection::vec(proptest::collection::vec(0u8..3, 0..4), 0..4),
        ) {
            prop_assert_eq!(encode(&b).starts_with(&encode(&a)), b.starts_with(&a));
        }

        #[test]
        fn reading_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut reader = KeyReader::new(&bytes);
            let _ = (reader.bytes(), reader.u64(), reader.digest(), reader.str(), reader.tag());
        }
    }
}
