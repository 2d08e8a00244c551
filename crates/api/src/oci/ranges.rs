//! `Range` (blob GET) and `Content-Range` (chunked upload PATCH) headers.

use flotilla_storage::ByteRange;

/// What a `Range: bytes=…` header asks of a blob of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable range: serve the whole blob (RFC 9110 lets a server ignore
    /// syntactically invalid or multi-range requests).
    Whole,
    /// One satisfiable range.
    Partial(ByteRange),
    /// A well-formed range that lies outside the blob: 416.
    Unsatisfiable,
}

/// Resolves a `Range` header value against a blob of `size` bytes.
pub fn parse_range(value: &str, size: u64) -> RangeRequest {
    let Some(spec) = value.trim().strip_prefix("bytes=") else { return RangeRequest::Whole };
    if spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((start, end)) = spec.trim().split_once('-') else { return RangeRequest::Whole };
    let (start, end) = (start.trim(), end.trim());
    match (start.is_empty(), end.is_empty()) {
        (true, true) => RangeRequest::Whole,
        (true, false) => {
            let Ok(suffix) = end.parse::<u64>() else { return RangeRequest::Whole };
            if suffix == 0 || size == 0 {
                return RangeRequest::Unsatisfiable;
            }
            let start = size.saturating_sub(suffix);
            RangeRequest::Partial(ByteRange { start, end: size - 1 })
        }
        (false, _) => {
            let Ok(start) = start.parse::<u64>() else { return RangeRequest::Whole };
            let end = if end.is_empty() {
                u64::MAX
            } else {
                match end.parse::<u64>() {
                    Ok(end) if end >= start => end,
                    _ => return RangeRequest::Whole,
                }
            };
            if start >= size {
                return RangeRequest::Unsatisfiable;
            }
            RangeRequest::Partial(ByteRange { start, end: end.min(size - 1) })
        }
    }
}

/// Parses an upload `Content-Range: <start>-<end>` (inclusive; a `bytes ` or
/// `bytes=` prefix and a `/<total>` suffix are tolerated).
pub fn parse_content_range(value: &str) -> Option<(u64, u64)> {
    let value = value.trim();
    let value = value.strip_prefix("bytes ").or_else(|| value.strip_prefix("bytes=")).unwrap_or(value);
    let value = value.split_once('/').map_or(value, |(range, _)| range);
    let (start, end) = value.split_once('-')?;
    let (start, end) = (start.trim().parse::<u64>().ok()?, end.trim().parse::<u64>().ok()?);
    (end >= start).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn partial(start: u64, end: u64) -> RangeRequest {
        RangeRequest::Partial(ByteRange { start, end })
    }

    #[test]
    fn conformance_range_cases() {
        assert_eq!(parse_range("bytes=500-1499", 2000), partial(500, 1499));
        assert_eq!(parse_range("bytes=500-", 2000), partial(500, 1999));
        assert_eq!(parse_range("bytes=-500", 2000), partial(1500, 1999));
        assert_eq!(parse_range("bytes=-5000", 2000), partial(0, 1999));
        assert_eq!(parse_range("bytes=0-99999", 2000), partial(0, 1999));
        assert_eq!(parse_range("bytes=2000-", 2000), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 2000), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range("bytes=5-1", 2000), RangeRequest::Whole);
        assert_eq!(parse_range("items=0-1", 2000), RangeRequest::Whole);
        assert_eq!(parse_range("bytes=0-1,5-6", 2000), RangeRequest::Whole);
    }

    #[test]
    fn content_ranges() {
        assert_eq!(parse_content_range("0-1023"), Some((0, 1023)));
        assert_eq!(parse_content_range("bytes 10-20/*"), Some((10, 20)));
        assert_eq!(parse_content_range("20-10"), None);
        assert_eq!(parse_content_range("abc"), None);
    }

    proptest! {
        #[test]
        fn ranges_stay_inside_the_blob(value in "\\PC{0,40}", size in 0u64..10_000) {
            if let RangeRequest::Partial(range) = parse_range(&value, size) {
                prop_assert!(range.start <= range.end && range.end < size);
            }
        }

        #[test]
        fn well_formed_ranges_resolve(start in 0u64..5000, len in 1u64..5000, size in 1u64..10_000) {
            let end = start + len - 1;
            match parse_range(&format!("bytes={start}-{end}"), size) {
                RangeRequest::Partial(range) => {
                    prop_assert_eq!(range.start, start);
                    prop_assert_eq!(range.end, end.min(size - 1));
                }
                RangeRequest::Unsatisfiable => prop_assert!(start >= size),
                RangeRequest::Whole => prop_assert!(false, "a well-formed range is never ignored"),
            }
        }

        #[test]
        fn content_range_never_panics(value in "\\PC{0,40}") {
            if let Some((start, end)) = parse_content_range(&value) {
                prop_assert!(start <= end);
            }
        }
    }
}
