//! OSS V4 signatures (`OSS4-HMAC-SHA256`).
//!
//! <https://www.alibabacloud.com/help/en/oss/developer-reference/recommend-to-use-signature-version-4>

use chrono::{DateTime, Utc};
use http::header::{HeaderValue, AUTHORIZATION};
use percent_encoding::utf8_percent_encode;

use super::shared::{encoded_sorted_query, hmac, set_header, sha256_hex, timestamp, Key, KeyCache};
use super::{RequestHead, Signer};
use crate::credentials::Credential;
use crate::error::{Error, Result};
use crate::protocol::endpoint::PATH_ENCODE_SET;

const ALGORITHM: &str = "OSS4-HMAC-SHA256";
const PRODUCT: &str = "oss";
const TERMINATOR: &str = "aliyun_v4_request";
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
const X_OSS_DATE: &str = "x-oss-date";
const X_OSS_CONTENT_SHA256: &str = "x-oss-content-sha256";
const X_OSS_SECURITY_TOKEN: &str = "x-oss-security-token";

/// Signs requests for one region with OSS V4.
#[derive(Debug, Clone)]
pub struct OssV4Signer {
    region: String,
    keys: KeyCache,
}

impl OssV4Signer {
    /// A signer for `region` (e.g. `cn-hangzhou`).
    pub fn new(region: impl Into<String>) -> Self {
        OssV4Signer {
            region: region.into(),
            keys: KeyCache::default(),
        }
    }
}

impl Signer for OssV4Signer {
    /// OSS V4 signs `/bucket/key` whatever the addressing style, so the URL is not needed.
    fn sign(
        &self,
        head: &mut RequestHead,
        _url: &reqwest::Url,
        cred: &Credential,
        now: DateTime<Utc>,
    ) -> Result<()> {
        // Sign a copy and commit only on success, so a failure leaves the request untouched.
        let mut headers = head.headers.clone();
        let timestamp = timestamp(now);
        set(&mut headers, X_OSS_DATE, &timestamp)?;
        set(&mut headers, X_OSS_CONTENT_SHA256, UNSIGNED_PAYLOAD)?;
        if let Some(token) = &cred.security_token {
            set(&mut headers, X_OSS_SECURITY_TOKEN, token)?;
        }
        let date = &timestamp[..8];
        let scope = scope(date, &self.region);
        let canonical = canonical_request(head, &headers)?;
        let to_sign = string_to_sign(&timestamp, &scope, &canonical);
        let secret = &cred.access_key_secret;
        let key = self
            .keys
            .get(secret, date, || signing_key(secret, date, &self.region));
        let signature = hex::encode(hmac(&key, to_sign.as_bytes()));
        let authorization = format!(
            "{ALGORITHM} Credential={}/{scope},Signature={signature}",
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
        headers.insert(AUTHORIZATION, value);
        head.headers = headers;
        Ok(())
    }
}

fn set(headers: &mut http::HeaderMap, name: &'static str, value: &str) -> Result<()> {
    set_header(headers, name, value, name == X_OSS_SECURITY_TOKEN)
}

fn scope(date: &str, region: &str) -> String {
    format!("{date}/{region}/{PRODUCT}/{TERMINATOR}")
}

/// `/bucket/key`, whatever the addressing style; `/` for service requests.
fn canonical_uri(bucket: Option<&str>, key: &str) -> String {
    let raw = match bucket {
        Some(b) => format!("/{b}/{key}"),
        None => "/".to_string(),
    };
    utf8_percent_encode(&raw, PATH_ENCODE_SET).to_string()
}

/// Names and values strictly encoded, sorted by encoded name then value; `k` alone when empty.
fn canonical_query(query: &[(String, String)]) -> String {
    encoded_sorted_query(query)
        .iter()
        .map(|(k, v)| {
            if v.is_empty() {
                k.clone()
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn is_signed_header(name: &str) -> bool {
    name.starts_with("x-oss-") || name == "content-type" || name == "content-md5"
}

/// `name:value\n` for every signed header, names lowercased and sorted, values trimmed.
fn canonical_headers(headers: &http::HeaderMap) -> Result<String> {
    let mut lines: Vec<(String, String)> = Vec::new();
    for (name, value) in headers {
        let name = name.as_str(); // already lowercase in `http`
        if !is_signed_header(name) {
            continue;
        }
        let value = value.to_str().map_err(|_| {
            Error::invalid(
                "header value",
                name,
                "it is not visible ASCII and cannot be signed",
            )
        })?;
        lines.push((name.to_string(), value.trim().to_string()));
    }
    lines.sort();
    Ok(lines.iter().map(|(k, v)| format!("{k}:{v}\n")).collect())
}

fn canonical_request(head: &RequestHead, headers: &http::HeaderMap) -> Result<String> {
    Ok(format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        head.method.as_str(),
        canonical_uri(head.bucket.as_deref(), &head.key),
        canonical_query(&head.query),
        canonical_headers(headers)?,
        "", // additional headers: none are signed beyond the defaults
        UNSIGNED_PAYLOAD
    ))
}

fn string_to_sign(timestamp: &str, scope: &str, canonical_request: &str) -> String {
    let hashed = sha256_hex(canonical_request.as_bytes());
    format!("{ALGORITHM}\n{timestamp}\n{scope}\n{hashed}")
}

fn signing_key(secret: &str, date: &str, region: &str) -> Key {
    let k = hmac(format!("aliyun_v4{secret}").as_bytes(), date.as_bytes());
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, PRODUCT.as_bytes());
    hmac(&k, TERMINATOR.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use http::header::HeaderName;
    use http::Method;

    /// Where a request would go (OSS V4 does not sign it).
    fn url() -> reqwest::Url {
        reqwest::Url::parse("http://bucket.oss-cn-hangzhou.aliyuncs.com/1234%2B-/123/1.txt")
            .unwrap()
    }

    /// The request of the official SDKs' V4 signer unit tests (DESIGN.md §3).
    fn sdk_test_request() -> RequestHead {
        let mut head = RequestHead::new(Method::PUT, "bucket", "1234+-/123/1.txt");
        for (k, v) in [
            ("param1", "value1"),
            ("+param1", "value3"),
            ("|param1", "value4"),
            ("+param2", ""),
            ("|param2", ""),
            ("param2", ""),
        ] {
            head.query.push((k.into(), v.into()));
        }
        for (k, v) in [
            ("x-oss-head1", "value"),
            ("abc", "value"),
            ("zabc", "value"),
            ("xyz", "value"),
            ("content-type", "text/plain"),
        ] {
            head.headers
                .insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        head
    }

    fn cred(token: Option<&str>) -> Credential {
        Credential {
            access_key_id: "ak".into(),
            access_key_secret: "sk".into(),
            security_token: token.map(str::to_string),
            expiration: None,
        }
    }

    fn signature_of(head: &RequestHead) -> String {
        let auth = head.headers[AUTHORIZATION].to_str().unwrap();
        auth.rsplit_once("Signature=").unwrap().1.to_string()
    }

    #[test]
    fn official_known_answer_without_token() {
        let mut head = sdk_test_request();
        let now = Utc.timestamp_opt(1702743657, 0).unwrap();
        OssV4Signer::new("cn-hangzhou")
            .sign(&mut head, &url(), &cred(None), now)
            .unwrap();
        assert_eq!(
            signature_of(&head),
            "e21d18daa82167720f9b1047ae7e7f1ce7cb77a31e8203a7d5f4624fa0284afe"
        );
        let auth = head.headers[AUTHORIZATION].to_str().unwrap();
        assert!(auth.starts_with(
            "OSS4-HMAC-SHA256 Credential=ak/20231216/cn-hangzhou/oss/aliyun_v4_request,Signature="
        ));
        assert!(head.headers[AUTHORIZATION].is_sensitive());
        assert_eq!(head.headers["x-oss-date"], "20231216T162057Z");
    }

    #[test]
    fn official_known_answer_with_token() {
        let mut head = sdk_test_request();
        let now = Utc.timestamp_opt(1702784856, 0).unwrap();
        OssV4Signer::new("cn-hangzhou")
            .sign(&mut head, &url(), &cred(Some("token")), now)
            .unwrap();
        assert_eq!(
            signature_of(&head),
            "b94a3f999cf85bcdc00d332fbd3734ba03e48382c36fa4d5af5df817395bd9ea"
        );
        assert_eq!(head.headers["x-oss-security-token"], "token");
    }

    #[test]
    fn canonical_uri_keeps_slashes_and_encodes_the_rest() {
        assert_eq!(
            canonical_uri(Some("b"), "1234+-/123/1.txt"),
            "/b/1234%2B-/123/1.txt"
        );
        assert_eq!(
            canonical_uri(Some("b"), "a b/~x;y=z&%"),
            "/b/a%20b/~x%3By%3Dz%26%25"
        );
        assert_eq!(canonical_uri(Some("b"), ""), "/b/");
        assert_eq!(canonical_uri(None, ""), "/");
    }

    #[test]
    fn canonical_query_is_strict_sorted_and_bare_when_empty() {
        let q = vec![
            ("prefix".to_string(), "a/b c".to_string()),
            ("list-type".to_string(), "2".to_string()),
            ("encoding-type".to_string(), "url".to_string()),
            ("acl".to_string(), String::new()),
        ];
        assert_eq!(
            canonical_query(&q),
            "acl&encoding-type=url&list-type=2&prefix=a%2Fb%20c"
        );
    }

    #[test]
    fn only_oss_and_content_headers_are_signed_trimmed() {
        let mut h = http::HeaderMap::new();
        h.insert("x-oss-meta-a", HeaderValue::from_static("  v  "));
        h.insert("content-type", HeaderValue::from_static("text/plain"));
        h.insert("range", HeaderValue::from_static("bytes=0-1"));
        h.insert("host", HeaderValue::from_static("example"));
        assert_eq!(
            canonical_headers(&h).unwrap(),
            "content-type:text/plain\nx-oss-meta-a:v\n"
        );
    }

    #[test]
    fn a_reused_signer_follows_secret_and_date_changes() {
        // One signer through a key rotation and a day boundary must sign like fresh ones.
        let reused = OssV4Signer::new("cn-hangzhou");
        let day1 = Utc.timestamp_opt(1702743657, 0).unwrap();
        let day2 = day1 + chrono::TimeDelta::days(1);
        let mut rotated = cred(None);
        rotated.access_key_secret = "sk2".into();
        for (c, now) in [
            (cred(None), day1),
            (cred(None), day1),
            (rotated.clone(), day1),
            (rotated, day2),
            (cred(None), day2),
        ] {
            let (mut a, mut b) = (sdk_test_request(), sdk_test_request());
            reused.sign(&mut a, &url(), &c, now).unwrap();
            OssV4Signer::new("cn-hangzhou")
                .sign(&mut b, &url(), &c, now)
                .unwrap();
            assert_eq!(signature_of(&a), signature_of(&b), "{now}");
        }
        assert_eq!(
            format!("{reused:?}"),
            r#"OssV4Signer { region: "cn-hangzhou", keys: KeyCache }"#
        );
    }

    #[test]
    fn signing_key_chain_matches_a_hand_computed_hmac() {
        let k1 = hmac(b"aliyun_v4sk", b"20231216");
        let k2 = hmac(&k1, b"cn-hangzhou");
        let k3 = hmac(&k2, b"oss");
        let k4 = hmac(&k3, b"aliyun_v4_request");
        assert_eq!(signing_key("sk", "20231216", "cn-hangzhou"), k4);
    }
}
