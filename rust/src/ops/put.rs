//! PutObject: a whole object in one request, checked against the CRC the server states (and,
//! on S3, by the server against the CRC sent with it).
//!
//! <https://www.alibabacloud.com/help/en/oss/developer-reference/putobject>

use bytes::Bytes;
use http::Method;

use crate::error::{Error, Result};
use crate::http::client::OssClient;
use crate::http::request::Request;
use crate::ops::answer::{check_crc, etag, stated_crc};
use crate::protocol::Target;

/// A stored object (or part): its ETag and CRC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    /// ETag as sent.
    pub(crate) etag: String,
    /// CRC of the bytes stored, of the protocol's own algorithm (CRC-64/XZ on OSS, CRC-64/NVME
    /// on S3).
    pub(crate) crc: u64,
    /// Bytes stored.
    pub(crate) len: u64,
}

impl OssClient {
    /// Stores `body` as the object `target`, replacing it whole, with its CRC where the
    /// protocol takes one and the store accepts it. A body the server stores with another CRC
    /// is sent again (under the same retry budget), and fails if it keeps
    /// arriving wrong.
    ///
    /// # Errors
    /// The request's error; `Protocol` when the stored CRC keeps differing.
    pub(crate) async fn put_object(&self, target: &Target, body: Bytes) -> Result<Stored> {
        let crc = self.dialect().crc.of(&body);
        self.checksummed_if_taken(target, "PutObject", |checksummed| {
            self.put(target, body.clone(), crc, checksummed)
        })
        .await
    }

    /// Runs `request(true)` (the request with the protocol's upload CRC) where the protocol
    /// takes one; when the store refuses the algorithm, runs `request(false)` instead.
    ///
    /// # Errors
    /// The request's error.
    pub(crate) async fn checksummed_if_taken<T, F, Fut>(
        &self,
        target: &Target,
        operation: &str,
        request: F,
    ) -> Result<T>
    where
        F: Fn(bool) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        if self.dialect().upload_checksum.is_some() {
            match request(true).await {
                Err(Error::Service(e)) if self.dialect().refuses_checksum(e.status, &e.code) => {
                    log::warn!(target: "osstorchconnector", "{target}: the store refuses \
                        CRC-64/NVME with {operation} ({} {}); sending without", e.status, e.code);
                }
                done => return done,
            }
        }
        request(false).await
    }

    async fn put(
        &self,
        target: &Target,
        body: Bytes,
        crc: u64,
        checksummed: bool,
    ) -> Result<Stored> {
        let len = body.len() as u64;
        let mut request = Request::new(Method::PUT, &target.bucket, &target.key).with_body(body);
        if checksummed {
            self.dialect()
                .send_checksum(&mut request.head.headers, crc, false);
        }
        let mut ctx = self.retry_context();
        loop {
            let response = self.send(&request, &mut ctx).await?;
            let checked = stated_crc(self, target, &response)
                .and_then(|stated| check_crc(self, target, "PutObject", stated, crc));
            let etag = etag(&response);
            let drained = self.body_bytes(&request.head, response).await;
            match checked.and(drained) {
                Ok(_) => return Ok(Stored { etag, crc, len }),
                Err(e) => self.backoff(&mut ctx, &e).await.ok_or(e)?,
            }
        }
    }
}
