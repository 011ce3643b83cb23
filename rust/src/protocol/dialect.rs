//! Everything that makes a request or an answer OSS rather than S3: header names, error codes,
//! the URI scheme, the environment variables. The client is given one [`Dialect`]; nothing else
//! in the crate spells these names, so the two protocols are two values of this type.

/// The names one object-store protocol uses.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Dialect {
    /// URI scheme with its `://`, as URIs and messages write it.
    pub(crate) scheme: &'static str,
    /// Environment variable naming the region when none is given; messages name this one.
    pub(crate) region_env: &'static str,
    /// Variables tried, in order, after [`Dialect::region_env`] (see [`Dialect::env_region`]).
    pub(crate) region_env_fallbacks: &'static [&'static str],
    /// Environment variables holding a key pair and session token.
    pub(crate) credential_env: CredentialEnv,
    /// Header carrying the request id of an answer.
    pub(crate) request_id_header: &'static str,
    /// Header carrying the error document of a body-less (HEAD) error answer, base64-encoded.
    /// Without one, a HEAD error is known by its status alone (no code).
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

/// Alibaba Cloud OSS.
pub(crate) static OSS: Dialect = Dialect {
    scheme: "oss://",
    region_env: "OSS_REGION",
    region_env_fallbacks: &[],
    credential_env: CredentialEnv {
        access_key_id: "OSS_ACCESS_KEY_ID",
        secret: "OSS_ACCESS_KEY_SECRET",
        session_token: "OSS_SESSION_TOKEN",
    },
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
    // https://docs.aws.amazon.com/sdkref/latest/guide/feature-static-credentials.html
    credential_env: CredentialEnv {
        access_key_id: "AWS_ACCESS_KEY_ID",
        secret: "AWS_SECRET_ACCESS_KEY",
        session_token: "AWS_SESSION_TOKEN",
    },
    request_id_header: "x-amz-request-id",
    // S3 answers a failed HEAD with a bare status: no body, no header carrying the document.
    error_header: None,
    // S3 states no CRC-64/XZ (its CRC-64 is x-amz-checksum-crc64nvme, another polynomial).
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

    /// The region variables for a message: `AWS_REGION or AWS_DEFAULT_REGION`.
    pub(crate) fn region_env_names(&self) -> String {
        std::iter::once(self.region_env)
            .chain(self.region_env_fallbacks.iter().copied())
            .collect::<Vec<_>>()
            .join(" or ")
    }
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
}
