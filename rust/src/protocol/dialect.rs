//! Everything that makes a request or an answer OSS rather than S3: header names, error codes,
//! the URI scheme, the region variable. The client is given one [`Dialect`]; nothing else in
//! the crate spells these names, so a second protocol is a second value of this type.

/// The names one object-store protocol uses.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Dialect {
    /// URI scheme with its `://`, as URIs and messages write it.
    pub(crate) scheme: &'static str,
    /// Environment variable naming the region when none is given.
    pub(crate) region_env: &'static str,
    /// Header carrying the request id of an answer.
    pub(crate) request_id_header: &'static str,
    /// Header carrying the error document of a body-less (HEAD) error answer, base64-encoded.
    pub(crate) error_header: Option<&'static str>,
    /// Header carrying the CRC-64/XZ of the whole object, in decimal.
    pub(crate) crc64_header: Option<&'static str>,
    /// Header naming the source (`/bucket/key`, percent-encoded) of a server-side copy.
    pub(crate) copy_source_header: &'static str,
    /// Error codes that mean the credentials in use are stale and a reload may help.
    pub(crate) credential_codes: &'static [&'static str],
    /// Error codes that ask the client to slow down, whatever their status.
    pub(crate) throttling_codes: &'static [&'static str],
    /// Error code of a request signed with a clock the server finds too far off.
    pub(crate) clock_skew_code: &'static str,
}

/// Alibaba Cloud OSS.
pub(crate) static OSS: Dialect = Dialect {
    scheme: "oss://",
    region_env: "OSS_REGION",
    request_id_header: "x-oss-request-id",
    error_header: Some("x-oss-err"),
    crc64_header: Some("x-oss-hash-crc64ecma"),
    copy_source_header: "x-oss-copy-source",
    credential_codes: &[
        "SecurityTokenExpired",
        "InvalidSecurityToken",
        "InvalidAccessKeyId",
    ],
    throttling_codes: &[
        "ServiceUnavailable",
        "TotalQpsLimitExceeded",
        "DownloadTrafficRateLimitExceeded",
        "UploadTrafficRateLimitExceeded",
        "QpsLimitExceeded",
    ],
    clock_skew_code: "RequestTimeTooSkewed",
};

/// S3 and S3-compatible stores (MinIO, OSS's S3 endpoint, ...).
pub(crate) static S3: Dialect = Dialect {
    scheme: "s3://",
    region_env: "AWS_REGION",
    request_id_header: "x-amz-request-id",
    error_header: None,
    crc64_header: None,
    copy_source_header: "x-amz-copy-source",
    credential_codes: &["ExpiredToken", "InvalidToken", "TokenRefreshRequired"],
    throttling_codes: &[
        "SlowDown",
        "ServiceUnavailable",
        "RequestLimitExceeded",
        "Throttling",
        "ThrottlingException",
    ],
    clock_skew_code: "RequestTimeTooSkewed",
};

impl Dialect {
    /// Whether an error answer asks the client to slow down.
    pub(crate) fn is_throttling(&self, status: u16, code: &str) -> bool {
        status == 429 || status == 503 || self.throttling_codes.contains(&code)
    }
}
