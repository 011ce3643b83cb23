//! Multipart uploads: initiate, upload parts, complete, abort — each part checked against the
//! CRC the server states, the whole object against the parts' CRCs combined (on S3, both are
//! also sent for the server to check).
//!
//! <https://www.alibabacloud.com/help/en/oss/developer-reference/multipart-upload-2>

use bytes::Bytes;
use http::Method;

use crate::error::{Error, Result};
use crate::http::client::OssClient;
use crate::http::request::Request;
use crate::ops::answer::{check_crc, etag, finished_etag, stated_crc};
use crate::ops::crc::Crc;
use crate::ops::put::Stored;
use crate::protocol::multipart_xml::{complete_body, parse_completed, parse_upload_id, ListedPart};
use crate::protocol::Target;

/// A multipart upload the server has started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MultipartUpload {
    /// Its upload id.
    pub(crate) id: String,
    /// Its parts carry their CRCs, and its completion the whole object's (S3): the store
    /// took the algorithm when the upload was created.
    pub(crate) checksummed: bool,
}

/// One part of a multipart upload, stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredPart {
    /// Its number, 1-based.
    pub(crate) number: u32,
    /// What the server stored.
    pub(crate) stored: Stored,
}

impl OssClient {
    /// Starts a multipart upload of `target`, with CRCs where the protocol takes them and the
    /// store accepts their algorithm (a store that refuses it gets an upload without).
    ///
    /// # Errors
    /// The request's error; `Protocol` when the answer holds no upload id.
    pub(crate) async fn initiate_upload(&self, target: &Target) -> Result<MultipartUpload> {
        self.checksummed_if_taken(target, "CreateMultipartUpload", |checksummed| {
            self.initiate(target, checksummed)
        })
        .await
    }

    async fn initiate(&self, target: &Target, checksummed: bool) -> Result<MultipartUpload> {
        let mut request = Request::new(Method::POST, &target.bucket, &target.key)
            // Sent twice, it starts a second upload that is never used: harmless.
            .idempotent(true);
        request.head.query.push(("uploads".into(), String::new()));
        if checksummed {
            self.dialect().announce_checksum(&mut request.head.headers);
        }
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
                Ok(id) => return Ok(MultipartUpload { id, checksummed }),
                Err(e) => self.backoff(&mut ctx, &e).await.ok_or(e)?,
            }
        }
    }

    /// Uploads part `number` of `upload`. A part the server stores with another CRC is sent
    /// again.
    ///
    /// # Errors
    /// The request's error; `Protocol` when the stored CRC keeps differing.
    pub(crate) async fn upload_part(
        &self,
        target: &Target,
        upload: &MultipartUpload,
        number: u32,
        body: Bytes,
    ) -> Result<StoredPart> {
        let crc = self.dialect().crc.of(&body);
        let len = body.len() as u64;
        let mut request = Request::new(Method::PUT, &target.bucket, &target.key).with_body(body);
        if upload.checksummed {
            self.dialect()
                .send_checksum(&mut request.head.headers, crc, false);
        }
        request.head.query = vec![
            ("partNumber".into(), number.to_string()),
            ("uploadId".into(), upload.id.clone()),
        ];
        let mut ctx = self.retry_context();
        loop {
            let response = self.send(&request, &mut ctx).await?;
            let checked = stated_crc(self, target, &response)
                .and_then(|stated| check_crc(self, target, "UploadPart", stated, crc));
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

    /// Completes `upload` from `parts` (in ascending number order): the object is
    /// replaced by their concatenation only now. The server's CRC of the result must be the
    /// parts' CRCs combined.
    ///
    /// Completing is not idempotent: after a transport error that may have reached the server,
    /// the object is looked at (HEAD) instead of completing blindly again — it counts as
    /// completed when it has exactly the expected CRC (or S3 multipart ETag) and size.
    ///
    /// # Errors
    /// The request's error; `Protocol` when the result's CRC is not the expected one.
    pub(crate) async fn complete_upload(
        &self,
        target: &Target,
        upload: &MultipartUpload,
        parts: &[StoredPart],
    ) -> Result<Stored> {
        let dialect = self.dialect();
        let list: Vec<ListedPart> = parts
            .iter()
            .map(|p| ListedPart {
                number: p.number,
                etag: p.stored.etag.clone(),
                checksum: dialect
                    .part_checksum(p.stored.crc)
                    .filter(|_| upload.checksummed),
            })
            .collect();
        let expected = combined(dialect.crc, parts);
        let body = Bytes::from(complete_body(&list));
        let mut request = Request::new(Method::POST, &target.bucket, &target.key).with_body(body);
        if upload.checksummed {
            dialect.send_checksum(&mut request.head.headers, expected.crc, true);
        }
        request
            .head
            .query
            .push(("uploadId".into(), upload.id.clone()));
        let mut ctx = self.retry_context();
        // An answer lost after the request may have reached the server: the object then says
        // whether the completion was done. Not there at all, it was not: send it again.
        for _ in 0..INTERRUPTED_COMPLETIONS {
            let lost = match self.send(&request, &mut ctx).await {
                Ok(response) => {
                    let stated = stated_crc(self, target, &response)?;
                    let etag = etag(&response);
                    match self.body_bytes(&request.head, response).await {
                        Ok(body) => {
                            let etag = finished_etag(parse_completed(&body), etag, "POST", target)?;
                            check_crc(
                                self,
                                target,
                                "CompleteMultipartUpload",
                                stated,
                                expected.crc,
                            )?;
                            return Ok(Stored { etag, ..expected });
                        }
                        Err(e @ Error::Transport { .. }) => e, // cut after it began
                        Err(e) => return Err(e),
                    }
                }
                Err(e @ Error::Transport { sent: true, .. }) => e,
                Err(e) => return Err(e),
            };
            match self.completed_anyway(target, &expected, parts).await {
                Completion::Done(stored) => return Ok(stored),
                Completion::NotDone => self.backoff(&mut ctx, &lost).await.ok_or(lost)?,
                Completion::Unknown => return Err(lost),
            }
        }
        Err(Error::Protocol {
            target: target.clone(),
            reason: format!(
                "CompleteMultipartUpload: {INTERRUPTED_COMPLETIONS} answers in a row were lost \
                 and the object was not there after any"
            ),
        })
    }

    /// What an interrupted Complete did: `target` is the object it was making (its size, and
    /// its CRC or else (a store that states none) its S3 multipart ETag, are the expected ones),
    /// there is no object at all (it was not done), or anything else.
    async fn completed_anyway(
        &self,
        target: &Target,
        expected: &Stored,
        parts: &[StoredPart],
    ) -> Completion {
        let meta = match self.head_object(target).await {
            Ok(meta) => meta,
            Err(Error::Service(e)) if e.status == 404 => return Completion::NotDone,
            Err(e) => {
                log::warn!(target: "osstorchconnector", "{target}: an interrupted completion \
                    cannot be checked: {e}");
                return Completion::Unknown;
            }
        };
        let same_content = match meta.crc {
            Some(crc) => crc == expected.crc,
            None => multipart_etag(parts).is_some_and(|e| e == meta.etag.trim_matches('"')),
        };
        if meta.size == expected.len && same_content {
            return Completion::Done(Stored {
                etag: meta.etag,
                ..expected.clone()
            });
        }
        log::warn!(
            target: "osstorchconnector",
            "{target}: after an interrupted completion the object is another (size {}, ETag {})",
            meta.size,
            meta.etag
        );
        Completion::Unknown
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

/// Completions sent again after their answers were lost and the object was not there.
const INTERRUPTED_COMPLETIONS: usize = 3;

/// What an interrupted CompleteMultipartUpload did, as the object shows it.
enum Completion {
    Done(Stored),
    NotDone,
    Unknown,
}

/// The ETag S3 gives an object completed from these parts: the MD5 of their MD5s (their
/// ETags, as hex) end to end, then `-` and their count. `None` when a part's ETag is not an
/// MD5 (an encrypted or non-S3 store): nothing to compare then.
fn multipart_etag(parts: &[StoredPart]) -> Option<String> {
    use md5::{Digest, Md5};
    let mut md5s = Md5::new();
    for part in parts {
        let digest = hex::decode(part.stored.etag.trim_matches('"')).ok()?;
        if digest.len() != 16 {
            return None;
        }
        md5s.update(&digest);
    }
    Some(format!("{}-{}", hex::encode(md5s.finalize()), parts.len()))
}

/// What the parts make together: their total length and combined CRC (of algorithm `algorithm`).
fn combined(algorithm: Crc, parts: &[StoredPart]) -> Stored {
    let mut crc = 0;
    let mut len = 0;
    for part in parts {
        crc = algorithm.combine(crc, part.stored.crc, part.stored.len);
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
        for algorithm in [Crc::Crc64Xz, Crc::Crc64Nvme] {
            let parts: Vec<StoredPart> = data
                .chunks(16_384)
                .enumerate()
                .map(|(i, chunk)| StoredPart {
                    number: i as u32 + 1,
                    stored: Stored {
                        etag: String::new(),
                        crc: algorithm.of(chunk),
                        len: chunk.len() as u64,
                    },
                })
                .collect();
            let whole = combined(algorithm, &parts);
            assert_eq!(
                (whole.crc, whole.len),
                (algorithm.of(&data), data.len() as u64)
            );
            assert_eq!(combined(algorithm, &[]).crc, algorithm.of(b""));
        }
    }

    #[test]
    fn s3s_multipart_etag_is_the_md5_of_the_part_md5s() {
        // Part ETags: MD5("hello") and MD5("world"); the expected value was computed with
        // Python's hashlib: md5(bytes.fromhex(a) + bytes.fromhex(b)).hexdigest() + "-2".
        let part = |n: u32, etag: &str| StoredPart {
            number: n,
            stored: Stored {
                etag: etag.to_string(),
                crc: 0,
                len: 5,
            },
        };
        let parts = [
            part(1, "\"5d41402abc4b2a76b9719d911017c592\""),
            part(2, "7d793037a0760186574b0282f2f435e7"),
        ];
        assert_eq!(
            multipart_etag(&parts).as_deref(),
            Some("065947336a2f2a95ba8899f3675c3be6-2")
        );
        assert_eq!(multipart_etag(&[part(1, "\"not-an-md5\"")]), None);
    }
}
