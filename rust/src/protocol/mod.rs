//! What requests and answers look like on the wire: `oss://` and `s3://` URIs, endpoints and addressing,
//! the XML documents, and the protocol's names ([`dialect`]).

pub(crate) mod dialect;
pub(crate) mod endpoint;
pub(crate) mod multipart_xml;
pub(crate) mod uri;
pub(crate) mod xml;

use std::fmt;

pub(crate) use dialect::{Dialect, OSS, S3};

/// An object (or a bucket, with an empty key) as requests address it and messages name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The protocol's URI scheme with its `://`.
    pub scheme: &'static str,
    /// Bucket; empty for service-level requests.
    pub bucket: String,
    /// Key inside the bucket; empty for bucket requests.
    pub key: String,
}

impl Target {
    /// `bucket`/`key` in OSS.
    pub(crate) fn oss(bucket: impl Into<String>, key: impl Into<String>) -> Self {
        Target {
            scheme: OSS.scheme,
            bucket: bucket.into(),
            key: key.into(),
        }
    }
}

impl Default for Target {
    fn default() -> Self {
        Target::oss("", "")
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}/{}", self.scheme, self.bucket, self.key)
    }
}
