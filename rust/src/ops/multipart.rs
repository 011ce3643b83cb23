//! Multipart uploads: initiate, upload parts, complete, abort — each part checked against the
//! CRC-64 the server states, the whole object against the parts' CRCs combined.
//!
//! <https://www.alibabacloud.com/help/en/oss/developer-reference/multipart-upload-2>

use bytes::Bytes;
use http::Method;

use crate::error::{Error, Result};
use crate::http::client::OssClient;
use crate::http::request::Request;
use crate::ops::answer::{check_crc, etag, finished_etag, stated_crc};
use crate::ops::crc::{crc64, crc64_combine};
use crate::ops::put::Stored;
use crate::protocol::multipart_xml::{complete_body, parse_completed, parse_upload_id};
use crate::protocol::Target;

/// One part of a multipart upload, stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredPart {
    /// Its number, 1-based.
    pub(crate) number: u32,
    /// What the server stored.
    pub(crate) stored: Stored,
}

impl OssClient {
    /// Starts a multipart upload of `target`; returns its upload id.
    ///
    /// # Errors
    /// The request's error; `Protocol` when the answer holds no upload id.
    pub(crate) async fn initiate_upload(&self, target: &Target) -> Result<String> {
        let mut request = Request::new(Method::POST, &target.bucket, &target.key)
            // Sent twice, it starts a second upload that is never used: harmless.
            .idempotent(true);
        request.head.query.push(("uploads".into(), String::new()));
        let mut ctx = self.retry_context();
        loop {
            let response = self.send(&request, &mut ctx).await?;
            let parsed = self
                .body_bytes(&request.head, response)
                .await
                .and_then(|body| {
                    parse_upload_id(&body).map_err(|reason| Error::Protocol {
                        target: target.clone(),
                        reason: format!("InitiateMultipartUpload: {reason}"),
                    })
                });
            match parsed {
                Ok(id) => return Ok(id),
                Err(e) => self.backoff(&mut ctx, &e).await.ok_or(e)?,
            }
        }
    }

    /// Uploads part `number` of upload `upload_id`. A part the server stores with another
    /// CRC-64 is sent again.
    ///
    /// # Errors
    /// The request's error; `Protocol` when the stored CRC-64 keeps differing.
    pub(crate) async fn upload_part(
        &self,
        target: &Target,
        upload_id: &str,
        number: u32,
        body: Bytes,
    ) -> Result<StoredPart> {
        let crc = crc64(&body);
        let len = body.len() as u64;
        let mut request = Request::new(Method::PUT, &target.bucket, &target.key).with_body(body);
        request.head.query = vec![
            ("partNumber".into(), number.to_string()),
            ("uploadId".into(), upload_id.to_string()),
        ];
        let mut ctx = self.retry_context();
        loop {
            let response = self.send(&request, &mut ctx).await?;
            let checked = stated_crc(self, target, &response)
                .and_then(|stated| check_crc(target, "UploadPart", stated, crc));
            let etag = etag(&response);
            let drained = self.body_bytes(&request.head, response).await;
            match checked.and(drained) {
                Ok(_) => {
                    let stored = Stored { etag, crc, len };
                    return Ok(StoredPart { number, stored });
                }
                Err(e) => self.backoff(&mut ctx, &e).await.ok_or(e)?,
            }
        }
    }

    /// Completes upload `upload_id` from `parts` (in ascending number order): the object is
    /// replaced by their concatenation only now. The server's CRC-64 of the result must be the
    /// parts' CRCs combined.
    ///
    /// Completing is not idempotent: after a transport error that may have reached the server,
    /// the object is looked at (HEAD) instead of completing blindly again — it counts as
    /// completed when it has exactly the expected CRC-64 and size.
    ///
    /// # Errors
    /// The request's error; `Protocol` when the result's CRC-64 is not the expected one.
    pub(crate) async fn complete_upload(
        &self,
        target: &Target,
        upload_id: &str,
        parts: &[StoredPart],
    ) -> Result<Stored> {
        let list: Vec<(u32, String)> = parts
            .iter()
            .map(|p| (p.number, p.stored.etag.clone()))
            .collect();
        let expected = combined(parts);
        let body = Bytes::from(complete_body(&list));
        let mut request = Request::new(Method::POST, &target.bucket, &target.key).with_body(body);
        request
            .head
            .query
            .push(("uploadId".into(), upload_id.to_string()));
        let mut ctx = self.retry_context();
        let response = match self.send(&request, &mut ctx).await {
            Ok(response) => response,
            Err(e @ Error::Transport { sent: true, .. }) => {
                return self.completed_anyway(target, &expected).await.ok_or(e);
            }
            Err(e) => return Err(e),
        };
        let stated = stated_crc(self, target, &response)?;
        let etag = etag(&response);
        let body = self.body_bytes(&request.head, response).await?;
        let etag = finished_etag(parse_completed(&body), etag, "POST", target)?;
        check_crc(target, "CompleteMultipartUpload", stated, expected.crc)?;
        Ok(Stored { etag, ..expected })
    }

    /// Whether `target` now is the object an interrupted Complete was making.
    async fn completed_anyway(&self, target: &Target, expected: &Stored) -> Option<Stored> {
        let meta = self.head_object(target).await.ok()?;
        let same = meta.size == expected.len && meta.crc == Some(expected.crc);
        same.then(|| Stored {
            etag: meta.etag,
            ..expected.clone()
        })
    }

    /// Abandons upload `upload_id`: its parts are deleted and the object stays as it was. An
    /// upload that no longer exists counts as aborted.
    ///
    /// # Errors
    /// The request's error.
    pub(crate) async fn abort_upload(&self, target: &Target, upload_id: &str) -> Result<()> {
        let mut request = Request::new(Method::DELETE, &target.bucket, &target.key);
        request
            .head
            .query
            .push(("uploadId".into(), upload_id.to_string()));
        let mut ctx = self.retry_context();
        match self.send(&request, &mut ctx).await {
            Ok(response) => self.body_bytes(&request.head, response).await.map(|_| ()),
            Err(Error::Service(e)) if e.code == "NoSuchUpload" => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// What the parts make together: their total length and combined CRC-64.
fn combined(parts: &[StoredPart]) -> Stored {
    let mut crc = 0;
    let mut len = 0;
    for part in parts {
        crc = crc64_combine(crc, part.stored.crc, part.stored.len);
        len += part.stored.len;
    }
    Stored {
        etag: String::new(),
        crc,
        len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_combine_into_the_whole_objects_crc() {
        let data: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 253) as u8).collect();
        let parts: Vec<StoredPart> = data
            .chunks(16_384)
            .enumerate()
            .map(|(i, chunk)| StoredPart {
                number: i as u32 + 1,
                stored: Stored {
                    etag: String::new(),
                    crc: crc64(chunk),
                    len: chunk.len() as u64,
                },
            })
            .collect();
        let whole = combined(&parts);
        assert_eq!((whole.crc, whole.len), (crc64(&data), data.len() as u64));
        assert_eq!(combined(&[]).crc, crc64(b""));
    }
}
