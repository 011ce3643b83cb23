//! PutObject: a whole object in one request, checked against the CRC-64 the server states.
//!
//! <https://www.alibabacloud.com/help/en/oss/developer-reference/putobject>

use bytes::Bytes;
use http::Method;

use crate::error::Result;
use crate::http::client::OssClient;
use crate::http::request::Request;
use crate::ops::answer::{check_crc, etag, stated_crc};
use crate::ops::crc::crc64;
use crate::protocol::Target;

/// A stored object (or part): its ETag and CRC-64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    /// ETag as sent.
    pub(crate) etag: String,
    /// CRC-64/XZ of the bytes stored.
    pub(crate) crc: u64,
    /// Bytes stored.
    pub(crate) len: u64,
}

impl OssClient {
    /// Stores `body` as the object `target`, replacing it whole. A body the server stores with
    /// another CRC-64 is sent again (under the same retry budget), and fails if it keeps
    /// arriving wrong.
    ///
    /// # Errors
    /// The request's error; `Protocol` when the stored CRC-64 keeps differing.
    pub(crate) async fn put_object(&self, target: &Target, body: Bytes) -> Result<Stored> {
        let crc = crc64(&body);
        let len = body.len() as u64;
        let request = Request::new(Method::PUT, &target.bucket, &target.key).with_body(body);
        let mut ctx = self.retry_context();
        loop {
            let response = self.send(&request, &mut ctx).await?;
            let checked = stated_crc(self, target, &response)
                .and_then(|stated| check_crc(target, "PutObject", stated, crc));
            let etag = etag(&response);
            let drained = self.body_bytes(&request.head, response).await;
            match checked.and(drained) {
                Ok(_) => return Ok(Stored { etag, crc, len }),
                Err(e) => self.backoff(&mut ctx, &e).await.ok_or(e)?,
            }
        }
    }
}
