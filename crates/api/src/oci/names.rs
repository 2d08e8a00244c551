//! Repository names and references, validated once at the edge.
//!
//! Grammar (distribution spec): a name is path components joined by `/`, each
//! `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`; a tag is `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.

use std::fmt;

use flotilla_storage::Digest;

/// Longest repository name accepted (bytes). Distribution uses 255 for the whole name.
pub const MAX_NAME_LEN: usize = 255;
/// Longest tag accepted (bytes), from the spec's grammar.
pub const MAX_TAG_LEN: usize = 128;

/// A valid repository name such as `team/app`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName(String);

impl RepoName {
    /// Validates `text` against the distribution grammar.
    pub fn parse(text: &str) -> Option<Self> {
        if text.is_empty() || text.len() > MAX_NAME_LEN {
            return None;
        }
        text.split('/').all(valid_component).then(|| RepoName(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let is_alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !is_alnum(bytes[0]) || !is_alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut index = 0;
    while index < bytes.len() {
        if is_alnum(bytes[index]) {
            index += 1;
            continue;
        }
        let separator_start = index;
        while index < bytes.len() && !is_alnum(bytes[index]) {
            index += 1;
        }
        let separator = &component[separator_start..index];
        let valid = separator == "." || separator == "_" || separator == "__" || separator.bytes().all(|b| b == b'-');
        if !valid {
            return false;
        }
    }
    true
}

/// A valid tag.
pub fn valid_tag(text: &str) -> bool {
    let bytes = text.as_bytes();
    let Some(&first) = bytes.first() else { return false };
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-';
    bytes.len() <= MAX_TAG_LEN && (first.is_ascii_alphanumeric() || first == b'_') && bytes.iter().all(|b| allowed(*b))
}

/// What follows `manifests/`: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(String),
    Digest(Digest),
}

impl Reference {
    /// A digest if the text contains `:`, else a tag.
    pub fn parse(text: &str) -> Option<Self> {
        if text.contains(':') {
            Digest::parse(text).ok().map(Reference::Digest)
        } else {
            valid_tag(text).then(|| Reference::Tag(text.to_owned()))
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(tag) => f.write_str(tag),
            Reference::Digest(digest) => write!(f, "{digest}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_the_grammar() {
        for name in ["a", "library/ubuntu", "a-b/c__d/e.f", "x--y", "0/1/2"] {
            assert!(RepoName::parse(name).is_some(), "{name}");
        }
    }

    #[test]
    fn rejects_tricks() {
        let long = "a".repeat(300);
        for name in [
            "",
            "A",
            "a/../b",
            "..",
            "a//b",
            "/a",
            "a/",
            "a%2Fb",
            "a___b",
            "-a",
            "a-",
            "a.-b",
            long.as_str(),
            "a b",
            "ä",
        ] {
            assert!(RepoName::parse(name).is_none(), "{name}");
        }
    }

    #[test]
    fn tags_and_digests() {
        assert_eq!(Reference::parse("v1.0"), Some(Reference::Tag("v1.0".into())));
        assert!(Reference::parse(".hidden").is_none());
        assert!(Reference::parse(&"t".repeat(129)).is_none());
        assert!(matches!(Reference::parse(&Digest::sha256_of(b"").to_string()), Some(Reference::Digest(_))));
        assert!(Reference::parse("sha256:short").is_none());
    }

    proptest! {
        #[test]
        fn names_never_panic_and_round_trip(text in "[a-z0-9._/-]{0,300}") {
            if let Some(name) = RepoName::parse(&text) {
                prop_assert_eq!(name.as_str(), text.as_str());
                prop_assert!(!text.contains("//") && !text.starts_with('/') && !text.contains(".."));
            }
        }

        #[test]
        fn valid_components_are_accepted(parts in proptest::collection::vec("[a-z0-9]{1,8}((\\.|_|__|-{1,3})[a-z0-9]{1,8}){0,3}", 1..5)) {
            let name = parts.join("/");
            prop_assume!(name.len() <= MAX_NAME_LEN);
            prop_assert!(RepoName::parse(&name).is_some());
        }

        #[test]
        fn references_never_panic(text in "\\PC{0,200}") {
            let _ = Reference::parse(&text);
        }
    }
}
