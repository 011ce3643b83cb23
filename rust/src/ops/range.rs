//! Byte ranges of objects: how a span is cut into parts, and the `Range` / `Content-Range`
//! headers that carry them.

/// Bytes `start..end` (end exclusive) of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ByteRange {
    /// First byte.
    pub(crate) start: u64,
    /// One past the last byte.
    pub(crate) end: u64,
}

impl ByteRange {
    /// The range cut into consecutive pieces of `part_size` bytes (the last may be shorter).
    pub(crate) fn parts(self, part_size: u64) -> impl Iterator<Item = ByteRange> {
        let step = part_size.max(1);
        let mut start = self.start;
        std::iter::from_fn(move || {
            (start < self.end).then(|| {
                let end = self.end.min(start.saturating_add(step));
                let piece = ByteRange { start, end };
                start = end;
                piece
            })
        })
    }

    /// Bytes in the range.
    pub(crate) fn len(self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// The `Range` header value asking for it (HTTP ranges are inclusive).
    pub(crate) fn header(self) -> String {
        format!("bytes={}-{}", self.start, self.end.saturating_sub(1))
    }
}

/// `bytes a-b/total` → `(a, total)`.
pub(crate) fn parse_content_range(value: &str) -> Option<(u64, u64)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let (start, _end) = span.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(start: u64, end: u64, part: u64) -> Vec<(u64, u64)> {
        (ByteRange { start, end })
            .parts(part)
            .map(|r| (r.start, r.end))
            .collect()
    }

    #[test]
    fn parts_cover_the_range_exactly() {
        assert_eq!(cut(0, 10, 4), [(0, 4), (4, 8), (8, 10)]);
        assert_eq!(cut(5, 13, 4), [(5, 9), (9, 13)]);
        assert_eq!(cut(7, 7, 4), []);
        assert_eq!(
            cut(0, 3, 0),
            [(0, 1), (1, 2), (2, 3)],
            "a zero part size still ends"
        );
        assert_eq!(cut(u64::MAX - 2, u64::MAX, 8), [(u64::MAX - 2, u64::MAX)]);
    }

    #[test]
    fn content_range() {
        assert_eq!(parse_content_range("bytes 0-99/1000"), Some((0, 1000)));
        assert_eq!(
            parse_content_range("bytes 8388608-16777215/1073741824"),
            Some((8388608, 1073741824))
        );
        assert_eq!(parse_content_range("bytes */1000"), None);
        assert_eq!(parse_content_range("0-99/1000"), None);
        assert_eq!(parse_content_range("bytes 0-99/*"), None);
    }

    proptest::proptest! {
        #[test]
        fn content_range_never_panics(s in ".*") {
            let _ = parse_content_range(&s);
        }
    }
}
