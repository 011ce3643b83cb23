//! GetObject, whole or by byte range, length- and CRC-checked.
//!
//! <https://www.alibabacloud.com/help/en/oss/developer-reference/getobject>

use bytes::{Bytes, BytesMut};
use http::header::{HeaderValue, IF_MATCH, RANGE};
use http::Method;

use crate::client::{target, transport_error, OssClient};
use crate::error::{Error, Result};
use crate::sign::RequestHead;

/// Bytes `start..end` (end exclusive) of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

/// A downloaded object or part of one.
#[derive(Debug, Clone)]
pub struct GetOutput {
    /// The bytes received.
    pub body: Bytes,
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
    /// # Errors
    /// As [`OssClient::get_object`]; `Service` with status 412 when the object changed.
    pub async fn get_range(
        &self,
        bucket: &str,
        key: &str,
        range: Option<ByteRange>,
        if_match: Option<&str>,
    ) -> Result<GetOutput> {
        let mut head = RequestHead::new(Method::GET, bucket, key);
        if let Some(r) = range {
            let value = format!("bytes={}-{}", r.start, r.end.saturating_sub(1));
            head.headers.insert(RANGE, header_value(&value)?);
        }
        if let Some(etag) = if_match.filter(|e| !e.is_empty()) {
            head.headers.insert(IF_MATCH, header_value(etag)?);
        }
        let mut ctx = self.retry_context();
        loop {
            let response = match self.send(&head, &mut ctx).await {
                // An empty object has no byte 0: S3-style servers answer 416 where OSS answers 200.
                Err(Error::Service(e))
                    if e.status == 416 && range.is_some_and(|r| r.start == 0) =>
                {
                    head.headers.remove(RANGE);
                    continue;
                }
                other => other?,
            };
            match read_checked(&head, response, range).await {
                Ok(out) => return Ok(out),
                Err(e) => self.backoff(&mut ctx, &e).await.ok_or(e)?,
            }
        }
    }
}

fn header_value(value: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(value)
        .map_err(|_| Error::invalid("header value", value, "it cannot be sent in HTTP"))
}

async fn read_checked(
    head: &RequestHead,
    mut response: reqwest::Response,
    range: Option<ByteRange>,
) -> Result<GetOutput> {
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
    let partial = response.status().as_u16() == 206;
    let (offset, object_size) = if partial {
        let value = header("content-range").unwrap_or_default();
        parse_content_range(&value)
            .ok_or_else(|| protocol(format!("206 answer with bad Content-Range {value:?}")))?
    } else {
        (0, 0)
    };
    let expected_crc = if partial {
        None
    } else {
        header("x-oss-hash-crc64ecma")
    };
    let expected_len = response.content_length();
    let mut body = BytesMut::with_capacity(expected_len.unwrap_or(0).min(1 << 30) as usize);
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(head, &e))?
    {
        body.extend_from_slice(&chunk);
    }
    if let Some(len) = expected_len {
        if body.len() as u64 != len {
            return Err(protocol(format!(
                "body ended after {} of {len} bytes",
                body.len()
            )));
        }
    }
    if let Some(expected) = expected_crc {
        let actual = crc64(&body);
        if expected.trim() != actual.to_string() {
            return Err(protocol(format!(
                "CRC-64 mismatch: server says {expected}, body has {actual}"
            )));
        }
    }
    let mut body = body.freeze();
    if partial {
        if let Some(r) = range {
            if offset != r.start {
                return Err(protocol(format!(
                    "asked for bytes from {}, got from {offset}",
                    r.start
                )));
            }
        }
        return Ok(GetOutput {
            body,
            offset,
            object_size,
            etag,
        });
    }
    // A 200 is the whole object: OSS answers a range past the end that way.
    let object_size = body.len() as u64;
    let offset = match range {
        Some(r) => {
            let start = r.start.min(object_size);
            let end = r.end.clamp(start, object_size);
            body = body.slice(start as usize..end as usize);
            start
        }
        None => 0,
    };
    Ok(GetOutput {
        body,
        offset,
        object_size,
        etag,
    })
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
    let mut digest = crc64fast::Digest::new();
    digest.write(data);
    digest.sum64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_is_crc64_xz() {
        // The CRC catalogue's check value for CRC-64/XZ.
        assert_eq!(crc64(b"123456789"), 0x995D_C9BB_DF19_39FA);
        assert_eq!(crc64(b""), 0);
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
}
