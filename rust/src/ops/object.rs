//! Operations on whole objects that move no object bytes: HeadObject, DeleteObject,
//! CopyObject.
//!
//! <https://www.alibabacloud.com/help/en/oss/developer-reference/headobject>

use http::Method;
use percent_encoding::utf8_percent_encode;

use crate::error::{Error, Result};
use crate::http::client::OssClient;
use crate::http::request::Request;
use crate::ops::answer::{etag, finished_etag, header, stated_crc};
use crate::protocol::endpoint::PATH_ENCODE_SET;
use crate::protocol::multipart_xml::parse_copied;
use crate::protocol::Target;

/// What HeadObject tells of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObjectMeta {
    /// Size in bytes.
    pub(crate) size: u64,
    /// ETag as sent.
    pub(crate) etag: String,
    /// CRC of the object, of the protocol's own algorithm, when the server states it.
    pub(crate) crc: Option<u64>,
    /// `Last-Modified`, as sent.
    pub(crate) last_modified: String,
}

impl OssClient {
    /// The size, ETag and CRC of `target`.
    ///
    /// # Errors
    /// `Service` 404 (`NoSuchKey`, decoded from the `x-oss-err` header) when it does not exist.
    pub(crate) async fn head_object(&self, target: &Target) -> Result<ObjectMeta> {
        if let Some(files) = self.local_store() {
            return files.head(target).await;
        }
        let mut request = Request::new(Method::HEAD, &target.bucket, &target.key);
        self.dialect().ask_for_checksum(&mut request.head.headers);
        let mut ctx = self.retry_context();
        let response = self.send(&request, &mut ctx).await?;
        // HEAD answers have no body: the length is the header's, not the body's.
        let length = header(&response, "content-length").unwrap_or_default();
        let size = length.trim().parse().map_err(|_| Error::Protocol {
            target: target.clone(),
            reason: format!("HeadObject answer with Content-Length {length:?}"),
        })?;
        Ok(ObjectMeta {
            size,
            etag: etag(&response),
            crc: stated_crc(self, target, &response)?,
            last_modified: header(&response, "last-modified").unwrap_or_default(),
        })
    }

    /// Deletes `target`; a key that does not exist is not an error (as OSS answers).
    ///
    /// # Errors
    /// The request's error.
    pub(crate) async fn delete_object(&self, target: &Target) -> Result<()> {
        let request = Request::new(Method::DELETE, &target.bucket, &target.key);
        let mut ctx = self.retry_context();
        let response = self.send(&request, &mut ctx).await?;
        self.body_bytes(&request.head, response).await.map(|_| ())
    }

    /// Copies `source` to `target` on the server side (within one region); returns the new
    /// object's ETag.
    ///
    /// # Errors
    /// The request's error (`NoSuchKey` when the source does not exist).
    pub(crate) async fn copy_object(&self, source: &Target, target: &Target) -> Result<String> {
        let mut request = Request::new(Method::PUT, &target.bucket, &target.key);
        let path = format!("/{}/{}", source.bucket, source.key);
        let value = utf8_percent_encode(&path, PATH_ENCODE_SET).to_string();
        let value = http::HeaderValue::from_str(&value).map_err(|_| {
            Error::invalid("copy source", &path, "it cannot be sent in an HTTP header")
        })?;
        let name = http::HeaderName::from_static(self.dialect().copy_source_header);
        request.head.headers.insert(name, value);
        let mut ctx = self.retry_context();
        let response = self.send(&request, &mut ctx).await?;
        let etag = etag(&response);
        let body = self.body_bytes(&request.head, response).await?;
        finished_etag(parse_copied(&body), etag, "PUT", target)
    }
}
