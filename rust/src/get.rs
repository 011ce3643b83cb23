//! GetObject: the whole body, length- and CRC-checked.
//!
//! <https://www.alibabacloud.com/help/en/oss/developer-reference/getobject>

use bytes::{Bytes, BytesMut};
use http::Method;

use crate::client::{target, transport_error, OssClient};
use crate::error::{Error, Result};
use crate::sign::RequestHead;

/// A downloaded object.
#[derive(Debug, Clone)]
pub struct GetObjectOutput {
    /// The whole body.
    pub body: Bytes,
    /// ETag as sent.
    pub etag: String,
}

impl OssClient {
    /// Downloads a whole object. A body cut short or failing its CRC-64 check is fetched again
    /// under the same retry budget; a short body is never returned as whole.
    ///
    /// # Errors
    /// `Service` (e.g. `NoSuchKey` with status 404), `Transport`, or `Protocol` when the body
    /// keeps failing its length or CRC check.
    pub async fn get_object(&self, bucket: &str, key: &str) -> Result<GetObjectOutput> {
        let head = RequestHead::new(Method::GET, bucket, key);
        let mut ctx = self.retry_context();
        loop {
            let response = self.send(&head, &mut ctx).await?;
            match read_checked(&head, response).await {
                Ok(out) => return Ok(out),
                Err(e) => self.backoff(&mut ctx, &e).await.ok_or(e)?,
            }
        }
    }
}

async fn read_checked(
    head: &RequestHead,
    mut response: reqwest::Response,
) -> Result<GetObjectOutput> {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let etag = header("etag").unwrap_or_default();
    let expected_crc = header("x-oss-hash-crc64ecma");
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
            return Err(Error::Protocol {
                target: target(head),
                reason: format!("body ended after {} of {len} bytes", body.len()),
            });
        }
    }
    if let Some(expected) = expected_crc {
        let actual = crc64(&body);
        if expected.trim() != actual.to_string() {
            return Err(Error::Protocol {
                target: target(head),
                reason: format!("CRC-64 mismatch: server says {expected}, body has {actual}"),
            });
        }
    }
    Ok(GetObjectOutput {
        body: body.freeze(),
        etag,
    })
}

/// CRC-64/XZ (ECMA-182 polynomial, reflected), as in `x-oss-hash-crc64ecma`.
pub fn crc64(data: &[u8]) -> u64 {
    let mut digest = crc64fast::Digest::new();
    digest.write(data);
    digest.sum64()
}

#[cfg(test)]
mod tests {
    use super::crc64;

    #[test]
    fn crc64_is_crc64_xz() {
        // The CRC catalogue's check value for CRC-64/XZ.
        assert_eq!(crc64(b"123456789"), 0x995D_C9BB_DF19_39FA);
        assert_eq!(crc64(b""), 0);
    }
}
