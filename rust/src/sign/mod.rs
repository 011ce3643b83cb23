//! Request signing: OSS V4 ([`OssV4Signer`]) and AWS SigV4 ([`AwsV4Signer`]). Signers are pure:
//! no IO, no clock — the caller passes the time.

mod aws_v4;
mod oss_v4;
mod shared;

use chrono::{DateTime, Utc};
use http::{HeaderMap, Method};

pub use aws_v4::AwsV4Signer;
pub use oss_v4::OssV4Signer;

use crate::credentials::Credential;
use crate::error::Result;

/// What a signer needs to know about a request, and where it writes its headers.
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// HTTP method.
    pub method: Method,
    /// Bucket, or `None` for service-level requests.
    pub bucket: Option<String>,
    /// Object key (decoded), empty for bucket requests.
    pub key: String,
    /// Query parameters, decoded; the signer and the URL builder each encode them.
    pub query: Vec<(String, String)>,
    /// Request headers; the signer adds its own.
    pub headers: HeaderMap,
}

impl RequestHead {
    /// A request for `key` in `bucket` (empty key: the bucket itself).
    pub fn new(method: Method, bucket: &str, key: &str) -> Self {
        RequestHead {
            method,
            bucket: Some(bucket.to_string()),
            key: key.to_string(),
            query: Vec::new(),
            headers: HeaderMap::new(),
        }
    }
}

/// A signing scheme: OSS V4, or AWS SigV4 for S3-compatible stores.
pub trait Signer: Send + Sync + std::fmt::Debug {
    /// Adds the date, token and `Authorization` headers for `cred` at time `now` to `head`,
    /// which will be sent to `url` (host and path as they go on the wire).
    ///
    /// # Errors
    /// When a header value the signature needs cannot be represented in HTTP.
    fn sign(
        &self,
        head: &mut RequestHead,
        url: &reqwest::Url,
        cred: &Credential,
        now: DateTime<Utc>,
    ) -> Result<()>;
}
