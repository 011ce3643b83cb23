//! AWS Signature Version 4 (`AWS4-HMAC-SHA256`), header authentication, with S3's rules.
//!
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html>
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html>
//!
//! S3 differs from the other AWS services in two ways that matter here: the path is
//! URI-encoded once, as sent (no second encoding, no `.`/`..` normalisation), and every request
//! carries `x-amz-content-sha256`, the payload's hash or `UNSIGNED-PAYLOAD`.

use chrono::{DateTime, Utc};
use http::header::{HeaderValue, AUTHORIZATION, HOST};
use percent_encoding::{percent_decode_str, percent_encode};

use super::shared::{encoded_sorted_query, hmac, set_header, sha256_hex, timestamp, Key, KeyCache};
use super::{RequestHead, Signer};
use crate::credentials::Credential;
use crate::error::{Error, Result};
use crate::protocol::endpoint::PATH_ENCODE_SET;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const S3: &str = "s3";
const TERMINATOR: &str = "aws4_request";
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// SHA-256 of no bytes: the payload hash of a bodiless request to a service other than S3.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const X_AMZ_DATE: &str = "x-amz-date";
const X_AMZ_CONTENT_SHA256: &str = "x-amz-content-sha256";
const X_AMZ_SECURITY_TOKEN: &str = "x-amz-security-token";

/// Headers left out of the signature: the HTTP stack or a proxy may add, drop or rewrite them
/// (the list botocore and the CRT signer leave out too), and `authorization` is the signature.
const UNSIGNED_HEADERS: [&str; 6] = [
    "authorization",
    "connection",
    "expect",
    "transfer-encoding",
    "user-agent",
    "x-amzn-trace-id",
];

/// Signs requests for one region and service (S3 unless told otherwise) with AWS SigV4.
///
/// Signed: the host the URL names, every header of the request head (they are sent as they
/// are) but those a proxy may rewrite (`user-agent`, `expect`, …), and the `x-amz-*` headers
/// the signer adds.
#[derive(Debug, Clone)]
pub struct AwsV4Signer {
    region: String,
    service: String,
    keys: KeyCache,
}

impl AwsV4Signer {
    /// A signer for S3 in `region` (e.g. `us-east-1`).
    pub fn new(region: impl Into<String>) -> Self {
        AwsV4Signer {
            region: region.into(),
            service: S3.to_string(),
            keys: KeyCache::default(),
        }
    }

    /// Signs for `service` instead of `s3` (AWS's generic test suite uses `service`). The path
    /// is still canonicalised the S3 way, and only S3 gets an `x-amz-content-sha256` it was not
    /// given: for another service a request without it is signed as having no body.
    pub fn with_service(mut self, service: impl Into<String>) -> Self {
        self.service = service.into();
        self
    }

    /// Signs the payload of `head`: sets `x-amz-content-sha256` to `sha256_hex`, the SHA-256 of
    /// the body in lowercase hex, which the signature then covers instead of `UNSIGNED-PAYLOAD`.
    ///
    /// # Errors
    /// `InvalidInput` when `sha256_hex` is not 64 lowercase hex digits.
    pub fn set_payload_sha256(head: &mut RequestHead, sha256_hex: &str) -> Result<()> {
        if !is_sha256_hex(sha256_hex) {
            return Err(Error::invalid(
                "payload SHA-256",
                sha256_hex,
                "it is not 64 lowercase hex digits",
            ));
        }
        set_header(&mut head.headers, X_AMZ_CONTENT_SHA256, sha256_hex, false)
    }

    /// The payload hash to sign: the caller's `x-amz-content-sha256`, else (S3) the header set
    /// to `UNSIGNED-PAYLOAD`, else (other services) the hash of an empty body.
    fn payload_hash(&self, headers: &mut http::HeaderMap) -> Result<String> {
        if let Some(given) = headers.get(X_AMZ_CONTENT_SHA256) {
            let given = given
                .to_str()
                .map_err(|_| not_a_digest(&String::from_utf8_lossy(given.as_bytes())))?;
            if !(is_sha256_hex(given) || given == UNSIGNED_PAYLOAD) {
                return Err(not_a_digest(given));
            }
            return Ok(given.to_string());
        }
        if self.service == S3 {
            set_header(headers, X_AMZ_CONTENT_SHA256, UNSIGNED_PAYLOAD, false)?;
            return Ok(UNSIGNED_PAYLOAD.to_string());
        }
        Ok(EMPTY_SHA256.to_string())
    }

    /// The `Authorization` value for `head` sent to `url` with `headers` (its final headers,
    /// the signer's own included) at `timestamp` (`YYYYMMDDTHHMMSSZ`).
    fn authorization(
        &self,
        head: &RequestHead,
        headers: &http::HeaderMap,
        url: &reqwest::Url,
        cred: &Credential,
        timestamp: &str,
        payload_hash: &str,
    ) -> Result<HeaderValue> {
        let date = &timestamp[..8];
        let scope = scope(date, &self.region, &self.service);
        let (canonical_headers, signed_headers) = canonical_headers(headers, url)?;
        let canonical = format!(
            "{}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{payload_hash}",
            head.method.as_str(),
            canonical_uri(url),
            canonical_query(&head.query),
        );
        let to_sign = string_to_sign(timestamp, &scope, &canonical);
        let secret = &cred.access_key_secret;
        let key = self.keys.get(secret, date, || {
            signing_key(secret, date, &self.region, &self.service)
        });
        let signature = hex::encode(hmac(&key, to_sign.as_bytes()));
        let authorization = format!(
            "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, \
             Signature={signature}",
            cred.access_key_id
        );
        let mut value = HeaderValue::from_str(&authorization).map_err(|_| {
            Error::invalid(
                "AccessKeyId",
                &cred.access_key_id,
                "it contains characters not allowed in an HTTP header",
            )
        })?;
        value.set_sensitive(true);
        Ok(value)
    }
}

impl Signer for AwsV4Signer {
    fn sign(
        &self,
        head: &mut RequestHead,
        url: &reqwest::Url,
        cred: &Credential,
        now: DateTime<Utc>,
    ) -> Result<()> {
        // Sign a copy and commit only on success, so a failure leaves the request untouched.
        let mut headers = head.headers.clone();
        let timestamp = timestamp(now);
        set_header(&mut headers, X_AMZ_DATE, &timestamp, false)?;
        if let Some(token) = &cred.security_token {
            set_header(&mut headers, X_AMZ_SECURITY_TOKEN, token, true)?;
        }
        let payload_hash = self.payload_hash(&mut headers)?;
        let authorization =
            self.authorization(head, &headers, url, cred, &timestamp, &payload_hash)?;
        headers.insert(AUTHORIZATION, authorization);
        head.headers = headers;
        Ok(())
    }
}

fn not_a_digest(value: &str) -> Error {
    Error::invalid(
        "x-amz-content-sha256",
        value,
        "it is neither UNSIGNED-PAYLOAD nor a SHA-256 in 64 lowercase hex digits",
    )
}

/// Whether `value` is a SHA-256 as S3 wants it: 64 lowercase hex digits.
fn is_sha256_hex(value: &str) -> bool {
    value.len() == 64
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn scope(date: &str, region: &str, service: &str) -> String {
    format!("{date}/{region}/{service}/{TERMINATOR}")
}

/// The path as sent, URI-encoded once (S3's rule): unreserved bytes and `/` kept, everything
/// else `%XX`. The URL's own escapes are decoded first, so an already-encoded path is not
/// encoded a second time and a path the URL left partly unencoded (`$`) is encoded.
fn canonical_uri(url: &reqwest::Url) -> String {
    let raw: Vec<u8> = percent_decode_str(url.path()).collect();
    let encoded = percent_encode(&raw, PATH_ENCODE_SET).to_string();
    if encoded.is_empty() {
        "/".to_string()
    } else {
        encoded
    }
}

/// Names and values RFC 3986 encoded, sorted by encoded name then value; `k=` when empty.
fn canonical_query(query: &[(String, String)]) -> String {
    encoded_sorted_query(query)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// `host[:port]` as the HTTP stack sends it: the port only when it is not the scheme's default.
fn host_of(url: &reqwest::Url) -> Result<String> {
    let host = url
        .host_str()
        .ok_or_else(|| Error::invalid("URL", url.as_str(), "it has no host to sign"))?;
    Ok(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    })
}

/// A header value as signed: trimmed, runs of whitespace inside it collapsed to one space.
fn normalise_value(value: &str) -> String {
    value.split_ascii_whitespace().collect::<Vec<_>>().join(" ")
}

/// (`name:value\n` for every signed header, `name;name;…`): names lowercase and sorted, the
/// values of a repeated header joined by `,` in the order they were added.
fn canonical_headers(headers: &http::HeaderMap, url: &reqwest::Url) -> Result<(String, String)> {
    let mut lines: Vec<(String, String)> = Vec::new();
    for name in headers.keys() {
        let name = name.as_str(); // already lowercase in `http`
        if UNSIGNED_HEADERS.contains(&name) {
            continue;
        }
        let mut values = Vec::new();
        for value in headers.get_all(name) {
            let value = value.to_str().map_err(|_| {
                Error::invalid(
                    "header value",
                    name,
                    "it is not visible ASCII and cannot be signed",
                )
            })?;
            values.push(normalise_value(value));
        }
        lines.push((name.to_string(), values.join(",")));
    }
    if !headers.contains_key(HOST) {
        lines.push((HOST.as_str().to_string(), host_of(url)?));
    }
    lines.sort();
    let canonical = lines.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed = lines
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    Ok((canonical, signed))
}

fn string_to_sign(timestamp: &str, scope: &str, canonical_request: &str) -> String {
    let hashed = sha256_hex(canonical_request.as_bytes());
    format!("{ALGORITHM}\n{timestamp}\n{scope}\n{hashed}")
}

fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Key {
    let k = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, service.as_bytes());
    hmac(&k, TERMINATOR.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use http::header::HeaderName;
    use http::{HeaderMap, Method};

    use crate::protocol::endpoint::Endpoint;

    fn cred(id: &str, secret: &str, token: Option<&str>) -> Credential {
        Credential {
            access_key_id: id.into(),
            access_key_secret: secret.into(),
            security_token: token.map(str::to_string),
            expiration: None,
        }
    }

    fn url(s: &str) -> reqwest::Url {
        reqwest::Url::parse(s).unwrap()
    }

    /// A head with `query` and `headers` (appended in order, so a name may repeat).
    fn head(method: Method, query: &[(&str, &str)], headers: &[(&str, &str)]) -> RequestHead {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        RequestHead {
            method,
            bucket: None,
            key: String::new(),
            query: query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            headers: map,
        }
    }

    fn authorization(head: &RequestHead) -> &str {
        head.headers[AUTHORIZATION].to_str().unwrap()
    }

    // ---- AWS's SigV4 test suite -------------------------------------------------------------
    //
    // The suite once published at
    // <https://docs.aws.amazon.com/general/latest/gr/signature-v4-test-suite.html>, as AWS's
    // SDKs carry it: the request and the expected `Authorization` of each case are those of
    // aws/aws-sdk-js-v3 `packages/signature-v4/src/suite.fixture.ts` and of awslabs/aws-c-auth
    // `tests/aws-signing-test-suite/v4/<case>/header-signed-request.txt` (which agree). Service
    // `service`, region us-east-1, 2015-08-30T12:36:00Z, key AKIDEXAMPLE. Every case is a
    // request to https://example.amazonaws.com; the signer adds `x-amz-date` (and the token).

    const SUITE_TIME: &str = "20150830T123600Z";
    const SUITE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn suite_signer() -> AwsV4Signer {
        AwsV4Signer::new("us-east-1").with_service("service")
    }

    fn suite_now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2015, 8, 30, 12, 36, 0).unwrap()
    }

    fn suite_authorization(signed_headers: &str, signature: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders={signed_headers}, Signature={signature}"
        )
    }

    struct Case {
        name: &'static str,
        method: Method,
        path: &'static str,
        query: &'static [(&'static str, &'static str)],
        headers: &'static [(&'static str, &'static str)],
        signed_headers: &'static str,
        signature: &'static str,
    }

    const UNRESERVED: &str = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    /// The suite's cases without a body or a token (no payload beyond the empty one).
    fn suite_cases() -> Vec<Case> {
        let plain = "host;x-amz-date";
        let my1 = "host;my-header1;x-amz-date";
        vec![
            // The simplest request: host and date signed, nothing else.
            Case {
                name: "get-vanilla",
                method: Method::GET,
                path: "/",
                query: &[],
                headers: &[],
                signed_headers: plain,
                signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            },
            // The canonical query is sorted by name, whatever order the request gives.
            Case {
                name: "get-vanilla-query-order-key-case",
                method: Method::GET,
                path: "/",
                query: &[("Param2", "value2"), ("Param1", "value1")],
                headers: &[],
                signed_headers: plain,
                signature: "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
            },
            Case {
                name: "get-vanilla-empty-query-key",
                method: Method::GET,
                path: "/",
                query: &[("Param1", "value1")],
                headers: &[],
                signed_headers: plain,
                signature: "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb",
            },
            // Unreserved characters are not encoded, in names or values.
            Case {
                name: "get-vanilla-query-unreserved",
                method: Method::GET,
                path: "/",
                query: &[(UNRESERVED, UNRESERVED)],
                headers: &[],
                signed_headers: plain,
                signature: "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197",
            },
            // UTF-8 in a query name is percent-encoded byte by byte.
            Case {
                name: "get-vanilla-utf8-query",
                method: Method::GET,
                path: "/",
                query: &[("ሴ", "bar")],
                headers: &[],
                signed_headers: plain,
                signature: "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
            },
            // ... and in the path.
            Case {
                name: "get-utf8",
                method: Method::GET,
                path: "/ሴ",
                query: &[],
                headers: &[],
                signed_headers: plain,
                signature: "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
            },
            Case {
                name: "get-unreserved",
                method: Method::GET,
                path: "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                query: &[],
                headers: &[],
                signed_headers: plain,
                signature: "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
            },
            // Values trimmed, inner runs of spaces collapsed (inside quotes too).
            Case {
                name: "get-header-value-trim",
                method: Method::GET,
                path: "/",
                query: &[],
                headers: &[("my-header1", " value1"), ("my-header2", "\"a   b   c\"")],
                signed_headers: "host;my-header1;my-header2;x-amz-date",
                signature: "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
            },
            // A repeated header: its values joined by commas, in the order sent.
            Case {
                name: "get-header-key-duplicate",
                method: Method::GET,
                path: "/",
                query: &[],
                headers: &[
                    ("my-header1", "value2"),
                    ("my-header1", "value2"),
                    ("my-header1", "value1"),
                ],
                signed_headers: my1,
                signature: "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
            },
            Case {
                name: "get-header-value-order",
                method: Method::GET,
                path: "/",
                query: &[],
                headers: &[
                    ("my-header1", "value4"),
                    ("my-header1", "value1"),
                    ("my-header1", "value3"),
                    ("my-header1", "value2"),
                ],
                signed_headers: my1,
                signature: "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01",
            },
            Case {
                name: "post-vanilla",
                method: Method::POST,
                path: "/",
                query: &[],
                headers: &[],
                signed_headers: plain,
                signature: "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
            },
            // Header names sorted; values keep their case.
            Case {
                name: "post-header-key-sort",
                method: Method::POST,
                path: "/",
                query: &[],
                headers: &[("my-header1", "value1")],
                signed_headers: my1,
                signature: "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c",
            },
            Case {
                name: "post-header-value-case",
                method: Method::POST,
                path: "/",
                query: &[],
                headers: &[("my-header1", "VALUE1")],
                signed_headers: my1,
                signature: "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d",
            },
            Case {
                name: "post-vanilla-query",
                method: Method::POST,
                path: "/",
                query: &[("Param1", "value1")],
                headers: &[],
                signed_headers: plain,
                signature: "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
            },
            // Every reserved character encoded, an empty value written `name=`, the encoded
            // names sorted (`%2B` before `%40`).
            Case {
                name: "post-vanilla-query-nonunreserved",
                method: Method::POST,
                path: "/",
                query: &[("@#$%^", ""), ("+", "/,?><`\";:\\|][{}")],
                headers: &[],
                signed_headers: plain,
                signature: "66c82657c86e26fb25238d0e69f011edc4c6df5ae71119d7cb98ed9b87393c1e",
            },
        ]
    }

    #[test]
    fn aws_test_suite_known_answers() {
        let signer = suite_signer();
        let cred = cred("AKIDEXAMPLE", SUITE_SECRET, None);
        for case in suite_cases() {
            let mut head = head(case.method, case.query, case.headers);
            let to = url(&format!("https://example.amazonaws.com{}", case.path));
            signer.sign(&mut head, &to, &cred, suite_now()).unwrap();
            assert_eq!(
                authorization(&head),
                suite_authorization(case.signed_headers, case.signature),
                "{}",
                case.name
            );
            assert_eq!(head.headers[X_AMZ_DATE], SUITE_TIME, "{}", case.name);
            // Not S3: no payload header is added.
            assert!(!head.headers.contains_key(X_AMZ_CONTENT_SHA256));
        }
    }

    #[test]
    fn aws_test_suite_session_tokens_are_sent_and_signed() {
        // aws-c-auth `get-vanilla-with-session-token` and aws-sdk-js-v3 `post-sts-header-before`.
        let cases = [
            (
                Method::GET,
                "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267",
                "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8",
            ),
            (
                Method::POST,
                "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMi\
                 cRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZamp\
                 KsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7Z\
                 D0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oL\
                 xBA==",
                "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead",
            ),
        ];
        for (method, token, signature) in cases {
            let mut head = head(method, &[], &[]);
            let cred = cred("AKIDEXAMPLE", SUITE_SECRET, Some(token));
            let to = url("https://example.amazonaws.com/");
            suite_signer()
                .sign(&mut head, &to, &cred, suite_now())
                .unwrap();
            assert_eq!(
                authorization(&head),
                suite_authorization("host;x-amz-date;x-amz-security-token", signature)
            );
            assert_eq!(head.headers[X_AMZ_SECURITY_TOKEN], token);
            assert!(head.headers[X_AMZ_SECURITY_TOKEN].is_sensitive());
        }
    }

    #[test]
    fn aws_test_suite_bodies_signed_by_their_hash() {
        // `post-x-www-form-urlencoded` and `-parameters`: the payload hash is the body's, and
        // the generic suite sends no `x-amz-content-sha256`, so the hash is given to the
        // canonicalisation step directly.
        let cases = [
            (
                "application/x-www-form-urlencoded",
                "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
            ),
            (
                "application/x-www-form-urlencoded; charset=utf8",
                "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe",
            ),
        ];
        for (content_type, signature) in cases {
            let mut head = head(
                Method::POST,
                &[],
                &[("content-type", content_type), (X_AMZ_DATE, SUITE_TIME)],
            );
            let to = url("https://example.amazonaws.com/");
            let cred = cred("AKIDEXAMPLE", SUITE_SECRET, None);
            let body_hash = sha256_hex(b"Param1=value1");
            let value = suite_signer()
                .authorization(&head, &head.headers, &to, &cred, SUITE_TIME, &body_hash)
                .unwrap();
            head.headers.insert(AUTHORIZATION, value);
            assert_eq!(
                authorization(&head),
                suite_authorization("content-type;host;x-amz-date", signature),
                "{content_type}"
            );
        }
    }

    // ---- The S3 documentation's examples -----------------------------------------------------
    //
    // "Signature Calculations for the Authorization Header: Transferring Payload in a Single
    // Chunk", section "Examples: Signature Calculations",
    // <https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html>: bucket
    // examplebucket (virtual-hosted), us-east-1, 2013-05-24T00:00:00Z, key AKIAIOSFODNN7EXAMPLE.

    const S3_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn s3_sign(head: &mut RequestHead, to: &str) -> String {
        let cred = cred("AKIAIOSFODNN7EXAMPLE", S3_SECRET, None);
        let now = Utc.with_ymd_and_hms(2013, 5, 24, 0, 0, 0).unwrap();
        AwsV4Signer::new("us-east-1")
            .sign(head, &url(to), &cred, now)
            .unwrap();
        authorization(head).to_string()
    }

    fn s3_authorization(signed_headers: &str, signature: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders={signed_headers}, Signature={signature}"
        )
    }

    fn s3_head(method: Method, key: &str, query: &[(&str, &str)]) -> RequestHead {
        let mut head = RequestHead::new(method, "examplebucket", key);
        head.query = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        head
    }

    #[test]
    fn s3_docs_get_object_with_range() {
        // "Example: GET Object": the first 10 bytes; the payload hash is the empty body's.
        let mut head = s3_head(Method::GET, "test.txt", &[]);
        head.headers
            .insert(http::header::RANGE, HeaderValue::from_static("bytes=0-9"));
        AwsV4Signer::set_payload_sha256(&mut head, EMPTY_SHA256).unwrap();
        assert_eq!(
            s3_sign(&mut head, "https://examplebucket.s3.amazonaws.com/test.txt"),
            s3_authorization(
                "host;range;x-amz-content-sha256;x-amz-date",
                "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
            )
        );
        assert_eq!(head.headers[X_AMZ_DATE], "20130524T000000Z");
    }

    #[test]
    fn s3_docs_put_object_with_a_signed_payload() {
        // "Example: PUT Object": `$` in the key is encoded in the canonical URI
        // (`/test%24file.text`) though the URL carries it as is; the body's hash is signed.
        let mut head = s3_head(Method::PUT, "test$file.text", &[]);
        head.headers.insert(
            http::header::DATE,
            HeaderValue::from_static("Fri, 24 May 2013 00:00:00 GMT"),
        );
        head.headers.insert(
            "x-amz-storage-class",
            HeaderValue::from_static("REDUCED_REDUNDANCY"),
        );
        let body_hash = sha256_hex(b"Welcome to Amazon S3.");
        assert_eq!(
            body_hash,
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
        );
        AwsV4Signer::set_payload_sha256(&mut head, &body_hash).unwrap();
        assert_eq!(
            s3_sign(
                &mut head,
                "https://examplebucket.s3.amazonaws.com/test$file.text"
            ),
            s3_authorization(
                "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
                "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
            )
        );
        assert_eq!(head.headers[X_AMZ_CONTENT_SHA256], body_hash.as_str());
    }

    #[test]
    fn s3_docs_get_bucket_lifecycle() {
        // "Example: GET Bucket Lifecycle": a sub-resource without a value is `lifecycle=`.
        let mut head = s3_head(Method::GET, "", &[("lifecycle", "")]);
        AwsV4Signer::set_payload_sha256(&mut head, EMPTY_SHA256).unwrap();
        assert_eq!(
            s3_sign(
                &mut head,
                "https://examplebucket.s3.amazonaws.com/?lifecycle"
            ),
            s3_authorization(
                "host;x-amz-content-sha256;x-amz-date",
                "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
            )
        );
    }

    #[test]
    fn s3_docs_list_objects_with_max_keys_and_prefix() {
        // "Example: Get Bucket (List Objects)"; given out of order, signed sorted.
        let mut head = s3_head(Method::GET, "", &[("prefix", "J"), ("max-keys", "2")]);
        AwsV4Signer::set_payload_sha256(&mut head, EMPTY_SHA256).unwrap();
        assert_eq!(
            s3_sign(
                &mut head,
                "https://examplebucket.s3.amazonaws.com/?prefix=J&max-keys=2"
            ),
            s3_authorization(
                "host;x-amz-content-sha256;x-amz-date",
                "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
            )
        );
    }

    #[test]
    fn signing_key_matches_the_documented_derivation() {
        // "Examples of how to derive a signing key for Signature Version 4",
        // <https://docs.aws.amazon.com/general/latest/gr/signature-v4-examples.html>.
        assert_eq!(
            hex::encode(signing_key(SUITE_SECRET, "20150830", "us-east-1", "iam")),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
    }

    // ---- S3's rules and the signer's own behaviour -------------------------------------------

    fn local_signer_and_cred() -> (AwsV4Signer, Credential) {
        (AwsV4Signer::new("us-east-1"), cred("ak", "sk", None))
    }

    #[test]
    fn s3_payload_is_unsigned_unless_a_hash_is_given() {
        let (signer, cred) = local_signer_and_cred();
        let to = url("http://127.0.0.1:9000/bkt/key");
        let mut head = RequestHead::new(Method::GET, "bkt", "key");
        signer.sign(&mut head, &to, &cred, suite_now()).unwrap();
        assert_eq!(head.headers[X_AMZ_CONTENT_SHA256], UNSIGNED_PAYLOAD);
        assert!(
            authorization(&head).contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date,")
        );

        // The same request with its body's hash given signs differently.
        let mut hashed = RequestHead::new(Method::GET, "bkt", "key");
        AwsV4Signer::set_payload_sha256(&mut hashed, EMPTY_SHA256).unwrap();
        signer.sign(&mut hashed, &to, &cred, suite_now()).unwrap();
        assert_eq!(hashed.headers[X_AMZ_CONTENT_SHA256], EMPTY_SHA256);
        assert_ne!(authorization(&head), authorization(&hashed));
    }

    #[test]
    fn a_bad_payload_hash_is_refused_and_leaves_the_request_untouched() {
        let mut head = RequestHead::new(Method::PUT, "bkt", "key");
        for bad in [
            "",
            "UNSIGNED-PAYLOAD",
            &EMPTY_SHA256.to_uppercase(),
            &EMPTY_SHA256[1..],
        ] {
            assert!(
                AwsV4Signer::set_payload_sha256(&mut head, bad).is_err(),
                "{bad}"
            );
        }
        assert!(head.headers.is_empty());
        // Set by hand to something no S3 accepts for a single-chunk request.
        head.headers.insert(
            X_AMZ_CONTENT_SHA256,
            HeaderValue::from_static("STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
        );
        let before = head.headers.clone();
        let (signer, cred) = local_signer_and_cred();
        let to = url("http://127.0.0.1:9000/bkt/key");
        let err = signer.sign(&mut head, &to, &cred, suite_now()).unwrap_err();
        assert!(err.to_string().contains("x-amz-content-sha256"), "{err}");
        assert_eq!(head.headers, before);
    }

    #[test]
    fn authorization_and_token_are_sensitive_and_debug_shows_no_secret() {
        let signer = AwsV4Signer::new("us-east-1");
        let mut head = RequestHead::new(Method::GET, "bkt", "key");
        let to = url("http://127.0.0.1:9000/bkt/key");
        signer
            .sign(&mut head, &to, &cred("ak", "sk", Some("tok")), suite_now())
            .unwrap();
        assert!(head.headers[AUTHORIZATION].is_sensitive());
        assert!(head.headers[X_AMZ_SECURITY_TOKEN].is_sensitive());
        assert_eq!(
            format!("{signer:?}"),
            r#"AwsV4Signer { region: "us-east-1", service: "s3", keys: KeyCache }"#
        );
    }

    #[test]
    fn canonical_uri_encodes_the_path_once() {
        // What the URL already escaped is not escaped again (S3 does not double-encode).
        assert_eq!(
            canonical_uri(&url("http://h/bkt/a%2Bb%20c%25d")),
            "/bkt/a%2Bb%20c%25d"
        );
        // What it left as is but SigV4 reserves is escaped.
        assert_eq!(
            canonical_uri(&url("http://h/bkt/test$file.text")),
            "/bkt/test%24file.text"
        );
        assert_eq!(canonical_uri(&url("http://h/ሴ")), "/%E1%88%B4");
        assert_eq!(canonical_uri(&url("http://h")), "/");
        assert_eq!(canonical_uri(&url("http://h/bkt/")), "/bkt/");
        assert_eq!(canonical_uri(&url("http://h/bkt/a//b")), "/bkt/a//b");
    }

    #[test]
    fn canonical_uri_is_the_path_the_url_builder_sends() {
        // Keys with `+`, spaces, `%`, unicode and sub-delimiters, in both addressing styles.
        let keys = [
            "a+b c.txt",
            "dir/x%2By/z",
            "~!*'()$&=;:@,",
            "ключ/数据 1",
            "k",
        ];
        for style in [Some(true), None] {
            let endpoint = Endpoint::parse("http://s3.example.com:9000", style).unwrap();
            for key in keys {
                let to = url(&endpoint.url("bkt", key));
                assert_eq!(canonical_uri(&to), to.path(), "{key}");
            }
        }
    }

    #[test]
    fn canonical_query_encodes_strictly_sorts_and_writes_empty_values() {
        let q = |pairs: &[(&str, &str)]| {
            canonical_query(
                &pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(
            q(&[
                ("prefix", "a/b c+d"),
                ("list-type", "2"),
                ("encoding-type", "url"),
                ("uploads", ""),
            ]),
            "encoding-type=url&list-type=2&prefix=a%2Fb%20c%2Bd&uploads="
        );
        // Same name twice: ordered by value.
        assert_eq!(q(&[("a", "2"), ("a", "1"), ("a-b", "")]), "a=1&a=2&a-b=");
        assert_eq!(q(&[]), "");
    }

    #[test]
    fn canonical_headers_sign_the_host_sent_and_skip_what_proxies_rewrite() {
        let mut h = HeaderMap::new();
        h.insert("user-agent", HeaderValue::from_static("x/1"));
        h.insert("expect", HeaderValue::from_static("100-continue"));
        h.insert("if-match", HeaderValue::from_static("\"etag\""));
        h.insert("x-amz-meta-a", HeaderValue::from_static("  a\t b  "));
        let (canonical, signed) = canonical_headers(&h, &url("http://127.0.0.1:9000/b/k")).unwrap();
        assert_eq!(
            canonical,
            "host:127.0.0.1:9000\nif-match:\"etag\"\nx-amz-meta-a:a b\n"
        );
        assert_eq!(signed, "host;if-match;x-amz-meta-a");
        // The scheme's default port is not sent, so not signed; IPv6 keeps its brackets.
        for (to, host) in [
            ("https://b.s3.amazonaws.com:443/k", "b.s3.amazonaws.com"),
            ("http://[::1]:9000/b/k", "[::1]:9000"),
        ] {
            let (canonical, _) = canonical_headers(&HeaderMap::new(), &url(to)).unwrap();
            assert_eq!(canonical, format!("host:{host}\n"));
        }
        // A host header given by the caller is the one signed.
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_static("other:1"));
        let (canonical, _) = canonical_headers(&h, &url("http://127.0.0.1:9000/")).unwrap();
        assert_eq!(canonical, "host:other:1\n");
    }

    #[test]
    fn a_reused_signer_follows_secret_and_date_changes() {
        let reused = AwsV4Signer::new("us-east-1");
        let to = url("http://127.0.0.1:9000/bkt/key");
        let day1 = suite_now();
        let day2 = day1 + chrono::TimeDelta::days(1);
        let (a, b) = (cred("ak", "sk", None), cred("ak", "sk2", None));
        for (c, now) in [(&a, day1), (&a, day1), (&b, day1), (&b, day2), (&a, day2)] {
            let mut x = RequestHead::new(Method::GET, "bkt", "key");
            let mut y = x.clone();
            reused.sign(&mut x, &to, c, now).unwrap();
            AwsV4Signer::new("us-east-1")
                .sign(&mut y, &to, c, now)
                .unwrap();
            assert_eq!(authorization(&x), authorization(&y), "{now}");
        }
    }
}
