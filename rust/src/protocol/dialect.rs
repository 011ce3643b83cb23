//! Everything that makes a request or an answer OSS rather than S3: header names, error codes,
//! the URI scheme, the environment variables. The client is given one [`Dialect`]; nothing else
//! in the crate spells these names, so the two protocols are two values of this type.

use crate::ops::crc::Crc;

/// The names one object-store protocol uses.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Dialect {
    /// URI scheme with its `://`, as URIs and messages write it.
    pub(crate) scheme: &'static str,
    /// Environment variable naming the region when none is given; messages name this one.
    pub(crate) region_env: &'static str,
    /// Variables tried, in order, after [`Dialect::region_env`] (see [`Dialect::env_region`]).
    pub(crate) region_env_fallbacks: &'static [&'static str],
    /// Environment variables naming the endpoint when none is given, tried in order.
    pub(crate) endpoint_env: &'static [&'static str],
    /// Environment variables holding a key pair and session token.
    pub(crate) credential_env: CredentialEnv,
    /// Header carrying the request id of an answer.
    pub(crate) request_id_header: &'static str,
    /// Header carrying the error document of a body-less (HEAD) error answer, base64-encoded.
    /// Without one, a HEAD error is known by its status alone (no code).
    pub(crate) error_header: Option<&'static str>,
    /// The CRC this protocol keeps for objects: taken of every upload, sent when
    /// [`Dialect::upload_checksum`] says so, and compared with what the server states.
    pub(crate) crc: Crc,
    /// Headers in which answers state an object's CRC, in order of preference.
    pub(crate) checksum_headers: &'static [ChecksumHeader],
    /// A request header without which the server states no CRC (S3's checksum mode).
    pub(crate) checksum_request: Option<(&'static str, &'static str)>,
    /// How uploads hand the store their CRC to check and keep; `None`: the store computes
    /// its own and states it.
    pub(crate) upload_checksum: Option<UploadChecksum>,
    /// Header naming the source (`/bucket/key`, percent-encoded) of a server-side copy.
    pub(crate) copy_source_header: &'static str,
    /// Error codes that mean the credentials in use are stale and a reload may help.
    pub(crate) credential_codes: &'static [&'static str],
    /// Error codes that ask the client to slow down, whatever their status.
    pub(crate) throttling_codes: &'static [&'static str],
    /// Error codes that say a request's body arrived other than it was sent (its checksum
    /// does not match): sending it again is the cure.
    pub(crate) corruption_codes: &'static [&'static str],
    /// Error codes with which a store that does not know a checksum algorithm may refuse a
    /// request carrying it (sent again without, see [`Dialect::refuses_checksum`]).
    pub(crate) checksum_refusal_codes: &'static [&'static str],
    /// Error code of a request signed with a clock the server finds too far off.
    pub(crate) clock_skew_code: &'static str,
}

/// A header in which a server states (or a client sends) the CRC of an object or part.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ChecksumHeader {
    pub(crate) name: &'static str,
    pub(crate) crc: Crc,
    /// The value is the CRC's big-endian bytes in base64 (S3), not a decimal number (OSS).
    pub(crate) base64: bool,
}

impl ChecksumHeader {
    /// The CRC a value of this header states. `Ok(None)` for S3's composite checksums of
    /// multipart objects (`<base64>-<parts>`), which are not a CRC of the object's bytes.
    ///
    /// # Errors
    /// A reason, when the value is not a CRC of this header's kind.
    pub(crate) fn parse(&self, value: &str) -> Result<Option<u64>, String> {
        let value = value.trim();
        let bad = || format!("{} {value:?} is not a {}", self.name, self.crc.name());
        if !self.base64 {
            return value.parse().map(Some).map_err(|_| bad());
        }
        if value.contains('-') {
            return Ok(None);
        }
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value)
            .map_err(|_| bad())?;
        if bytes.len() != self.crc.width() {
            return Err(bad());
        }
        Ok(Some(
            bytes.iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b)),
        ))
    }

    /// `value` written as this header writes it.
    pub(crate) fn format(&self, value: u64) -> String {
        if !self.base64 {
            return value.to_string();
        }
        use base64::Engine as _;
        let bytes = value.to_be_bytes();
        base64::engine::general_purpose::STANDARD.encode(&bytes[8 - self.crc.width()..])
    }
}

/// How an upload hands an S3 store the CRC of its bytes, for the store to check on arrival
/// and keep (and state on later reads).
/// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html>
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct UploadChecksum {
    /// Sent with the CRC of a PutObject's or UploadPart's body, and of the whole object with
    /// CompleteMultipartUpload.
    pub(crate) header: &'static ChecksumHeader,
    /// `(header, value)` naming the algorithm when a multipart upload is created.
    pub(crate) algorithm: (&'static str, &'static str),
    /// `(header, value)` asking, at creation and completion, for a CRC of the whole object
    /// rather than a CRC of the parts' CRCs.
    pub(crate) full_object: (&'static str, &'static str),
    /// Element of a part's CRC in CompleteMultipartUpload's document.
    pub(crate) part_element: &'static str,
}

/// The environment variables of a key pair, as the protocol's own SDKs and CLI read them.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct CredentialEnv {
    /// The access key id.
    pub(crate) access_key_id: &'static str,
    /// The secret.
    pub(crate) secret: &'static str,
    /// The STS session token, when the key pair is temporary.
    pub(crate) session_token: &'static str,
}

const OSS_CRC64: ChecksumHeader = ChecksumHeader {
    name: "x-oss-hash-crc64ecma",
    crc: Crc::Crc64Xz,
    base64: false,
};
const S3_CRC64NVME: ChecksumHeader = ChecksumHeader {
    name: "x-amz-checksum-crc64nvme",
    crc: Crc::Crc64Nvme,
    base64: true,
};
const S3_CRC32C: ChecksumHeader = ChecksumHeader {
    name: "x-amz-checksum-crc32c",
    crc: Crc::Crc32c,
    base64: true,
};
const S3_CRC32: ChecksumHeader = ChecksumHeader {
    name: "x-amz-checksum-crc32",
    crc: Crc::Crc32,
    base64: true,
};

/// Alibaba Cloud OSS.
pub(crate) static OSS: Dialect = Dialect {
    scheme: "oss://",
    region_env: "OSS_REGION",
    region_env_fallbacks: &[],
    // No endpoint is the official's local-path mode (files), not a variable to look up.
    endpoint_env: &[],
    credential_env: CredentialEnv {
        access_key_id: "OSS_ACCESS_KEY_ID",
        secret: "OSS_ACCESS_KEY_SECRET",
        session_token: "OSS_SESSION_TOKEN",
    },
    request_id_header: "x-oss-request-id",
    error_header: Some("x-oss-err"),
    crc: Crc::Crc64Xz,
    checksum_headers: &[OSS_CRC64],
    checksum_request: None,
    // OSS takes no CRC from the client; it states its own on every write's answer.
    upload_checksum: None,
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
    // OSS is sent no checksum to compare with (it states its CRC-64 in the answer instead).
    corruption_codes: &[],
    checksum_refusal_codes: &[],
    clock_skew_code: "RequestTimeTooSkewed",
};

/// Amazon S3 and the stores that speak its protocol (MinIO, OSS's S3 endpoint, ...).
///
/// Error codes: <https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html#ErrorCodeList>.
/// `InvalidAccessKeyId` is not a credential code here, unlike OSS: AWS answers a stale STS
/// token with `ExpiredToken`, so an unknown key id is a wrong key that no reload mends.
/// `Throttling`/`ThrottlingException`/`RequestLimitExceeded` are AWS's generic throttling codes
/// (sent with 400), which S3-compatible stores and proxies in front of S3 use too.
/// Region variables: <https://docs.aws.amazon.com/sdkref/latest/guide/feature-region.html>
/// (`AWS_REGION`; the CLI and boto3 also read `AWS_DEFAULT_REGION`).
pub(crate) static S3: Dialect = Dialect {
    scheme: "s3://",
    region_env: "AWS_REGION",
    region_env_fallbacks: &["AWS_DEFAULT_REGION"],
    // https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html
    endpoint_env: &["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"],
    // https://docs.aws.amazon.com/sdkref/latest/guide/feature-static-credentials.html
    credential_env: CredentialEnv {
        access_key_id: "AWS_ACCESS_KEY_ID",
        secret: "AWS_SECRET_ACCESS_KEY",
        session_token: "AWS_SESSION_TOKEN",
    },
    request_id_header: "x-amz-request-id",
    // S3 answers a failed HEAD with a bare status: no body, no header carrying the document.
    error_header: None,
    // AWS stores a CRC-64/NVME of every new object (its default) and states it on whole-object
    // GETs and HEADs asked in checksum mode; objects written by other clients may carry only
    // a CRC-32C or CRC-32.
    crc: Crc::Crc64Nvme,
    checksum_headers: &[S3_CRC64NVME, S3_CRC32C, S3_CRC32],
    checksum_request: Some(("x-amz-checksum-mode", "ENABLED")),
    upload_checksum: Some(UploadChecksum {
        header: &S3_CRC64NVME,
        algorithm: ("x-amz-checksum-algorithm", "CRC64NVME"),
        full_object: ("x-amz-checksum-type", "FULL_OBJECT"),
        part_element: "ChecksumCRC64NVME",
    }),
    copy_source_header: "x-amz-copy-source",
    credential_codes: &["ExpiredToken", "InvalidToken", "TokenRefreshRequired"],
    throttling_codes: &[
        "SlowDown",
        "ServiceUnavailable",
        "RequestLimitExceeded",
        "Throttling",
        "ThrottlingException",
    ],
    // https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html: a Content-MD5 or
    // x-amz-checksum-* that does not match the body, a signed payload hash that does not.
    corruption_codes: &["BadDigest", "XAmzContentSHA256Mismatch"],
    // CRC-64/NVME came to S3 in 2025: older S3-compatible stores refuse the algorithm's name.
    checksum_refusal_codes: &["InvalidArgument", "InvalidRequest", "NotImplemented"],
    clock_skew_code: "RequestTimeTooSkewed",
};

/// Every dialect, to find the one a [`super::Target`]'s scheme names.
static DIALECTS: [&Dialect; 2] = [&OSS, &S3];

impl Dialect {
    /// The dialect whose scheme is `scheme` (`oss://`, `s3://`).
    pub(crate) fn of_scheme(scheme: &str) -> Option<&'static Dialect> {
        DIALECTS.iter().copied().find(|d| d.scheme == scheme)
    }

    /// Whether an error code says the credentials in use are stale or malformed.
    pub(crate) fn refuses_credentials(&self, code: &str) -> bool {
        self.credential_codes.contains(&code)
    }

    /// Whether an error answer asks the client to slow down.
    pub(crate) fn is_throttling(&self, status: u16, code: &str) -> bool {
        status == 429 || status == 503 || self.throttling_codes.contains(&code)
    }

    /// The region the environment names: the first of [`Dialect::region_env`] and then
    /// [`Dialect::region_env_fallbacks`] that is set and not blank, trimmed.
    pub(crate) fn env_region(&self, lookup: impl Fn(&str) -> Option<String>) -> Option<String> {
        std::iter::once(self.region_env)
            .chain(self.region_env_fallbacks.iter().copied())
            .filter_map(lookup)
            .map(|value| value.trim().to_string())
            .find(|value| !value.is_empty())
    }

    /// Whether an error answer to a request carrying a CRC may mean the store does not take
    /// that algorithm: the request is then sent once more without it.
    pub(crate) fn refuses_checksum(&self, status: u16, code: &str) -> bool {
        self.upload_checksum.is_some()
            && matches!(status, 400 | 501)
            && self.checksum_refusal_codes.contains(&code)
    }

    /// Asks a GET or HEAD answer to state the object's CRC, where the protocol needs asking.
    pub(crate) fn ask_for_checksum(&self, headers: &mut http::HeaderMap) {
        if let Some((name, value)) = self.checksum_request {
            headers.insert(
                http::HeaderName::from_static(name),
                http::HeaderValue::from_static(value),
            );
        }
    }

    /// Hands the store `crc` (of the protocol's own algorithm), the CRC of a PutObject's or
    /// UploadPart's body or, with `whole`, of a completed object, where the protocol takes one.
    pub(crate) fn send_checksum(&self, headers: &mut http::HeaderMap, crc: u64, whole: bool) {
        let Some(upload) = &self.upload_checksum else {
            return;
        };
        if let Ok(value) = http::HeaderValue::try_from(upload.header.format(crc)) {
            headers.insert(http::HeaderName::from_static(upload.header.name), value);
        }
        if whole {
            insert_static(headers, upload.full_object);
        }
    }

    /// Names, when a multipart upload is created, the CRC its parts will carry and asks for a
    /// CRC of the whole object, where the protocol takes one.
    pub(crate) fn announce_checksum(&self, headers: &mut http::HeaderMap) {
        if let Some(upload) = &self.upload_checksum {
            insert_static(headers, upload.algorithm);
            insert_static(headers, upload.full_object);
        }
    }

    /// `(element, value)` of a part's CRC in CompleteMultipartUpload's document, where the
    /// protocol lists one.
    pub(crate) fn part_checksum(&self, crc: u64) -> Option<(&'static str, String)> {
        let upload = self.upload_checksum.as_ref()?;
        Some((upload.part_element, upload.header.format(crc)))
    }

    /// The endpoint the environment names: the first of [`Dialect::endpoint_env`] that is set
    /// and not blank, trimmed.
    pub(crate) fn env_endpoint(&self, lookup: impl Fn(&str) -> Option<String>) -> Option<String> {
        self.endpoint_env
            .iter()
            .filter_map(|name| lookup(name))
            .map(|value| value.trim().to_string())
            .find(|value| !value.is_empty())
    }

    /// The region variables for a message: `AWS_REGION or AWS_DEFAULT_REGION`.
    pub(crate) fn region_env_names(&self) -> String {
        std::iter::once(self.region_env)
            .chain(self.region_env_fallbacks.iter().copied())
            .collect::<Vec<_>>()
            .join(" or ")
    }
}

fn insert_static(headers: &mut http::HeaderMap, (name, value): (&'static str, &'static str)) {
    headers.insert(
        http::HeaderName::from_static(name),
        http::HeaderValue::from_static(value),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_region_variable_wins_over_its_fallback() {
        let both = [
            ("AWS_REGION", "eu-west-1"),
            ("AWS_DEFAULT_REGION", "us-west-2"),
        ];
        assert_eq!(S3.env_region(env(&both)).as_deref(), Some("eu-west-1"));
        let fallback = [("AWS_DEFAULT_REGION", " us-west-2 ")];
        assert_eq!(S3.env_region(env(&fallback)).as_deref(), Some("us-west-2"));
        // A blank variable is unset, as the AWS CLI treats it.
        let blank = [("AWS_REGION", "  "), ("AWS_DEFAULT_REGION", "ap-south-1")];
        assert_eq!(S3.env_region(env(&blank)).as_deref(), Some("ap-south-1"));
        assert_eq!(S3.env_region(env(&[])), None);
    }

    #[test]
    fn oss_reads_only_its_own_region_variable() {
        let aws = [("AWS_REGION", "eu-west-1")];
        assert_eq!(OSS.env_region(env(&aws)), None);
        let oss = [("OSS_REGION", "cn-hangzhou")];
        assert_eq!(OSS.env_region(env(&oss)).as_deref(), Some("cn-hangzhou"));
        assert_eq!(OSS.region_env_names(), "OSS_REGION");
        assert_eq!(S3.region_env_names(), "AWS_REGION or AWS_DEFAULT_REGION");
    }

    #[test]
    fn dialects_are_found_by_scheme() {
        assert_eq!(Dialect::of_scheme("s3://"), Some(&S3));
        assert_eq!(Dialect::of_scheme("oss://"), Some(&OSS));
        assert_eq!(Dialect::of_scheme("gs://"), None);
    }

    #[test]
    fn throttling_is_429_503_or_a_named_code() {
        for (dialect, status, code, want) in [
            (&S3, 503, "SlowDown", true),
            (&S3, 503, "", true), // a HEAD's bare 503
            (&S3, 400, "Throttling", true),
            (&S3, 400, "ThrottlingException", true),
            (&S3, 400, "RequestLimitExceeded", true),
            (&S3, 429, "", true),
            (&S3, 400, "TotalQpsLimitExceeded", false), // OSS's name means nothing to S3
            (&S3, 403, "AccessDenied", false),
            (&S3, 500, "InternalError", false), // retried, but not a reason to narrow
            (&OSS, 503, "ServiceUnavailable", true),
            (&OSS, 400, "QpsLimitExceeded", true),
            (&OSS, 400, "SlowDown", false),
            (&OSS, 404, "NoSuchKey", false),
        ] {
            assert_eq!(
                dialect.is_throttling(status, code),
                want,
                "{} {status} {code}",
                dialect.scheme
            );
        }
    }

    #[test]
    fn checksum_headers_read_and_write_each_protocols_encoding() {
        // Values from Python: zlib.crc32(b"Hello World") is 0x4a17b156, and
        // base64.b64encode(struct.pack(">I", 0x4a17b156)) is "ShexVg==".
        let crc32 = &S3.checksum_headers[2];
        assert_eq!(crc32.crc, Crc::Crc32);
        assert_eq!(crc32.format(0x4a17_b156), "ShexVg==");
        assert_eq!(crc32.parse("ShexVg=="), Ok(Some(0x4a17_b156)));
        assert_eq!(Crc::Crc32.of(b"Hello World"), 0x4a17_b156);
        let crc64 = &S3.checksum_headers[0];
        assert_eq!(crc64.name, "x-amz-checksum-crc64nvme");
        // The catalogue's check value for CRC-64/NVME, packed ">Q" and base64-encoded.
        let value = Crc::Crc64Nvme.of(b"123456789");
        assert_eq!(crc64.format(value), "rosUhgp5mIg=");
        assert_eq!(crc64.parse(" rosUhgp5mIg= "), Ok(Some(value)));
        // A composite checksum of a multipart object is no CRC of its bytes.
        assert_eq!(crc64.parse("rosUhgp5mIg=-3"), Ok(None));
        // Not base64, or not 8 bytes: an error naming the header.
        for bad in ["%%%", "ShexVg=="] {
            let err = crc64.parse(bad).unwrap_err();
            assert!(err.contains("x-amz-checksum-crc64nvme"), "{err}");
        }
        let oss = &OSS.checksum_headers[0];
        assert_eq!(oss.format(42), "42");
        assert_eq!(oss.parse("18446744073709551615"), Ok(Some(u64::MAX)));
        assert!(oss.parse("abc").is_err());
    }

    #[test]
    fn s3_takes_its_endpoint_from_the_aws_variables_oss_from_none() {
        let both = [
            ("AWS_ENDPOINT_URL", "http://general:1"),
            ("AWS_ENDPOINT_URL_S3", " http://s3-only:2 "),
        ];
        assert_eq!(
            S3.env_endpoint(env(&both)).as_deref(),
            Some("http://s3-only:2")
        );
        let general = [
            ("AWS_ENDPOINT_URL", "http://general:1"),
            ("AWS_ENDPOINT_URL_S3", ""),
        ];
        assert_eq!(
            S3.env_endpoint(env(&general)).as_deref(),
            Some("http://general:1")
        );
        assert_eq!(S3.env_endpoint(env(&[])), None);
        assert_eq!(OSS.env_endpoint(env(&both)), None);
    }
}
