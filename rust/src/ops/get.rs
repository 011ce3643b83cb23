//! GetObject, whole or by byte range, length- and CRC-checked.
//!
//! <https://www.alibabacloud.com/help/en/oss/developer-reference/getobject>

use http::header::{HeaderValue, IF_MATCH, RANGE};
use http::Method;

use crate::error::{Error, Result};
use crate::http::client::{target, transport_error, OssClient};
use crate::memory::chunks::{Chunks, Receiving};
use crate::memory::destination::Destination;
use crate::memory::lent::Lent;
use crate::sign::RequestHead;

/// Bytes `start..end` (end exclusive) of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl ByteRange {
    /// The range cut into consecutive pieces of `part_size` bytes (the last may be shorter).
    pub fn parts(self, part_size: u64) -> impl Iterator<Item = ByteRange> {
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
}

/// A downloaded object or part of one.
#[derive(Debug, Clone)]
pub struct GetOutput {
    /// The bytes received.
    pub body: Chunks,
    /// Offset of `body` in the object.
    pub offset: u64,
    /// Size of the whole object.
    pub object_size: u64,
    /// ETag as sent, for `If-Match` on the object's other parts.
    pub etag: String,
}

impl OssClient {
    /// Downloads a whole object. A body cut short or failing its CRC-64 check is fetched again
    /// under the same retry budget; a short body is never returned as whole.
    ///
    /// # Errors
    /// `Service` (e.g. `NoSuchKey` with status 404), `Transport`, or `Protocol` when the body
    /// keeps failing its length or CRC check.
    pub async fn get_object(&self, bucket: &str, key: &str) -> Result<GetOutput> {
        self.get_range(bucket, key, None, None).await
    }

    /// Downloads `range` of an object (all of it for `None`). When the range reaches past the
    /// end, what exists is returned and `object_size` tells the real size. With `if_match`, the
    /// object must still have that ETag (parts of one object all come from one version).
    ///
    /// A body cut short (reset, early EOF, read timeout) is resumed with a Range request from
    /// where it stopped, pinned to the same ETag, under the same retry budget; a whole object is
    /// checked against `x-oss-hash-crc64ecma` once assembled, and fetched again on a mismatch.
    ///
    /// # Errors
    /// As [`OssClient::get_object`]; `Service` with status 412 when the object changed.
    pub async fn get_range(
        &self,
        bucket: &str,
        key: &str,
        range: Option<ByteRange>,
        if_match: Option<&str>,
    ) -> Result<GetOutput> {
        self.get_range_lent(bucket, key, range, if_match, None)
            .await
    }

    /// As [`OssClient::get_range`]; a whole object of exactly `lent.len()` bytes is written into
    /// `lent` and comes back in it ([`Chunks::lent`]). Anything else (another size, a retry
    /// after a CRC mismatch) is received as usual, the lent memory let go.
    ///
    /// # Errors
    /// As [`OssClient::get_range`].
    pub async fn get_range_lent(
        &self,
        bucket: &str,
        key: &str,
        range: Option<ByteRange>,
        if_match: Option<&str>,
        mut lent: Option<Lent>,
    ) -> Result<GetOutput> {
        let mut ctx = self.retry_context();
        let mut partial: Option<Partial> = None;
        let mut unranged_retry = false;
        loop {
            let (asked, etag) = match &partial {
                Some(p) => (Some(p.remaining()), Some(p.etag.as_str())),
                None if unranged_retry => (None, if_match),
                None => (range, if_match),
            };
            let head = get_head(bucket, key, asked, etag)?;
            let response = match self.send(&head, &mut ctx).await {
                // An empty object has no byte 0: S3-style servers answer 416 where OSS answers 200.
                Err(Error::Service(e))
                    if e.status == 416 && asked.is_some_and(|r| r.start == 0) =>
                {
                    unranged_retry = true;
                    continue;
                }
                other => other?,
            };
            match read_into(&head, response, asked, &mut partial, &mut lent).await {
                Ok(()) => {
                    if let Some(p) = partial.take() {
                        return Ok(p.finish(range));
                    }
                }
                Err(e) => self.backoff(&mut ctx, &e).await.ok_or(e)?,
            }
        }
    }

    /// Downloads bytes `range` of an object straight into `dst`, which is exactly that long. A
    /// body cut short is resumed into the rest of `dst` under the same retry budget; with
    /// `if_match` the object must still have that ETag. No CRC check: ranges carry none.
    ///
    /// # Errors
    /// As [`OssClient::get_range`]; `Protocol` when the server sends other bytes than asked.
    pub async fn get_range_into(
        &self,
        bucket: &str,
        key: &str,
        range: ByteRange,
        if_match: Option<&str>,
        mut dst: Destination,
    ) -> Result<()> {
        let wanted = range.end.saturating_sub(range.start);
        if wanted != dst.len() as u64 {
            return Err(Error::Internal(format!(
                "a destination of {} bytes for a range of {wanted}",
                dst.len()
            )));
        }
        let mut ctx = self.retry_context();
        let mut written = 0usize;
        while (written as u64) < wanted {
            let start = range.start + written as u64;
            let rest = ByteRange {
                start,
                end: range.end,
            };
            let head = get_head(bucket, key, Some(rest), if_match)?;
            let response = self.send(&head, &mut ctx).await?;
            if let Err(e) = write_range(&head, response, start, &mut dst, &mut written).await {
                self.backoff(&mut ctx, &e).await.ok_or(e)?;
            }
        }
        Ok(())
    }
}

/// Copies one answer to a range request starting at object offset `start` into `dst` from
/// `*written` on, advancing `*written` as bytes arrive (so a broken body can be resumed).
async fn write_range(
    head: &RequestHead,
    mut response: reqwest::Response,
    start: u64,
    dst: &mut Destination,
    written: &mut usize,
) -> Result<()> {
    let protocol = |reason: String| Error::Protocol {
        target: target(head),
        reason,
    };
    // A server that ignores Range answers 200 with the whole object: skip to `start`.
    let mut skip = if response.status().as_u16() == 206 {
        partial_content(head, &response, Some(start))?;
        0
    } else {
        start
    };
    while *written < dst.len() {
        let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| transport_error(head, &e))?
        else {
            return Err(protocol(format!(
                "body ended after {written} of {} bytes",
                dst.len()
            )));
        };
        let mut piece = &chunk[..];
        let skipped = (skip.min(piece.len() as u64)) as usize;
        skip -= skipped as u64;
        piece = &piece[skipped..];
        let piece = &piece[..piece.len().min(dst.len() - *written)];
        if !dst.write(*written, piece) {
            return Err(Error::Internal("range overran its destination".into()));
        }
        *written += piece.len();
    }
    Ok(())
}

/// What has arrived of one response's bytes, kept across attempts so a resume appends to it.
struct Partial {
    body: Receiving,
    /// Object offset of `body[0]`.
    offset: u64,
    /// One past the last byte this download wants.
    end: u64,
    object_size: u64,
    etag: String,
    /// The answer was a 200: the whole object, whatever range was asked.
    whole: bool,
    /// CRC-64 of the whole object as the server stated it, checked once all of it has arrived,
    /// and the digest of what has arrived so far (taken per piece while it is still in cache).
    whole_crc: Option<(String, crc_fast::Digest)>,
}

impl Partial {
    fn next_offset(&self) -> u64 {
        self.offset + self.body.len() as u64
    }

    fn remaining(&self) -> ByteRange {
        ByteRange {
            start: self.next_offset(),
            end: self.end,
        }
    }

    /// The bytes, cut to the asked range when the server sent the whole object.
    fn finish(self, range: Option<ByteRange>) -> GetOutput {
        let mut body = self.body.finish();
        let mut offset = self.offset;
        if let (true, Some(r)) = (self.whole, range) {
            let start = r.start.min(self.object_size);
            let end = r.end.clamp(start, self.object_size);
            body = body.slice(start as usize, end as usize);
            offset = start;
        }
        GetOutput {
            body,
            offset,
            object_size: self.object_size,
            etag: self.etag,
        }
    }
}

/// A GetObject request, for `range` when given, pinned to `if_match` when given.
fn get_head(
    bucket: &str,
    key: &str,
    range: Option<ByteRange>,
    if_match: Option<&str>,
) -> Result<RequestHead> {
    let mut head = RequestHead::new(Method::GET, bucket, key);
    if let Some(r) = range {
        let value = format!("bytes={}-{}", r.start, r.end.saturating_sub(1));
        head.headers.insert(RANGE, header_value(&value)?);
    }
    if let Some(etag) = if_match.filter(|e| !e.is_empty()) {
        head.headers.insert(IF_MATCH, header_value(etag)?);
    }
    Ok(head)
}

/// `(first byte, object size)` of a 206 answer, which must start where it was `asked` to.
fn partial_content(
    head: &RequestHead,
    response: &reqwest::Response,
    asked: Option<u64>,
) -> Result<(u64, u64)> {
    let protocol = |reason: String| Error::Protocol {
        target: target(head),
        reason,
    };
    let value = response
        .headers()
        .get("content-range")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (start, object_size) = parse_content_range(value)
        .ok_or_else(|| protocol(format!("206 answer with bad Content-Range {value:?}")))?;
    match asked {
        Some(from) if from != start => Err(protocol(format!(
            "asked for bytes from {from}, got from {start}"
        ))),
        _ => Ok((start, object_size)),
    }
}

fn header_value(value: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(value)
        .map_err(|_| Error::invalid("header value", value, "it cannot be sent in HTTP"))
}

/// Reads one response into `partial`: appends when it continues it, starts afresh otherwise.
/// On a broken body the bytes received so far stay in `partial` for the resume.
async fn read_into(
    head: &RequestHead,
    mut response: reqwest::Response,
    asked: Option<ByteRange>,
    partial: &mut Option<Partial>,
    lent: &mut Option<Lent>,
) -> Result<()> {
    let protocol = |reason: String| Error::Protocol {
        target: target(head),
        reason,
    };
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let etag = header("etag").unwrap_or_default();
    let length = response.content_length();
    let fresh = if response.status().as_u16() == 206 {
        let (start, object_size) = partial_content(head, &response, asked.map(|r| r.start))?;
        let len = length.ok_or_else(|| protocol("206 answer without Content-Length".into()))?;
        let continues = partial.as_ref().is_some_and(|p| p.next_offset() == start);
        if !continues {
            *partial = Some(Partial {
                body: Receiving::for_length(len.min(1 << 30) as usize),
                offset: start,
                end: start + len,
                object_size,
                etag,
                whole: false,
                whole_crc: None,
            });
        }
        None
    } else {
        let body = match lent.take() {
            Some(memory) if length == Some(memory.len() as u64) => Receiving::into_lent(memory),
            _ => Receiving::for_length(length.unwrap_or(0).min(1 << 30) as usize),
        };
        Some(Partial {
            body,
            offset: 0,
            end: length.unwrap_or(u64::MAX),
            object_size: length.unwrap_or(0),
            etag,
            whole: true,
            whole_crc: header("x-oss-hash-crc64ecma").map(|v| (v, crc64_digest())),
        })
    };
    if let Some(whole) = fresh {
        *partial = Some(whole);
    }
    let Some(state) = partial.as_mut() else {
        return Err(Error::Internal("no download state".into()));
    };
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(head, &e))?
    {
        if let Some((_, digest)) = state.whole_crc.as_mut() {
            digest.update(&chunk);
        }
        state.body.push(chunk);
    }
    if state.end == u64::MAX {
        // No Content-Length: the connection's end was the body's end.
        state.end = state.next_offset();
        state.object_size = state.end;
    }
    if state.next_offset() < state.end {
        return Err(protocol(format!(
            "body ended after {} of {} bytes",
            state.next_offset() - state.offset,
            state.end - state.offset
        )));
    }
    if let Some((expected, digest)) = state.whole_crc.take() {
        let actual = digest.finalize();
        if expected.trim() != actual.to_string() {
            // Corrupt somewhere: start over rather than resume.
            *partial = None;
            return Err(protocol(format!(
                "CRC-64 mismatch: server says {expected}, body has {actual}"
            )));
        }
    }
    Ok(())
}

/// `bytes a-b/total` → `(a, total)`.
fn parse_content_range(value: &str) -> Option<(u64, u64)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let (start, _end) = span.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()?))
}

/// CRC-64/XZ (ECMA-182 polynomial, reflected), as in `x-oss-hash-crc64ecma`.
pub fn crc64(data: &[u8]) -> u64 {
    let mut digest = crc64_digest();
    digest.update(data);
    digest.finalize()
}

fn crc64_digest() -> crc_fast::Digest {
    crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Xz)
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
    fn crc64_is_crc64_xz() {
        // The CRC catalogue's check value for CRC-64/XZ.
        assert_eq!(crc64(b"123456789"), 0x995D_C9BB_DF19_39FA);
        assert_eq!(crc64(b""), 0);
    }

    /// CRC-64/XZ one bit at a time, straight from its definition.
    fn crc64_by_bits(data: &[u8]) -> u64 {
        let mut crc = u64::MAX;
        for &byte in data {
            crc ^= u64::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xC96C_5795_D787_0F42
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn crc64_of_pieces_is_the_crc_of_the_whole() {
        // Pieces as the socket delivers them: any size, across the SIMD code's block widths.
        let data: Vec<u8> = (0..70_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let expected = crc64_by_bits(&data);
        assert_eq!(crc64(&data), expected);
        for piece in [
            1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 255, 256, 4095, 16_385, 70_000,
        ] {
            let mut digest = crc64_digest();
            for chunk in data.chunks(piece) {
                digest.update(chunk);
            }
            assert_eq!(digest.finalize(), expected, "pieces of {piece} bytes");
        }
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
