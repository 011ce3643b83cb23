//! The XML documents OSS answers with: `ListBucketResult` and `Error`.
//!
//! <https://www.alibabacloud.com/help/en/oss/developer-reference/listobjectsv2>

use percent_encoding::percent_decode_str;
use serde::Deserialize;

/// One page of a ListObjectsV2 answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListBucketResult {
    /// Objects on this page.
    #[serde(default)]
    pub contents: Vec<ObjectSummary>,
    /// Whether more pages follow.
    #[serde(default)]
    pub is_truncated: bool,
    /// Token for the next page.
    #[serde(default)]
    pub next_continuation_token: Option<String>,
    /// `url` when keys are URL-encoded.
    #[serde(default)]
    pub encoding_type: Option<String>,
}

/// One listed object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ObjectSummary {
    /// Object key (URL-encoded when the listing asked for `encoding-type=url`).
    pub key: String,
    /// Size in bytes.
    #[serde(default)]
    pub size: u64,
    /// ETag, quoted as sent.
    #[serde(default, rename = "ETag")]
    pub etag: String,
}

/// The `<Error>` body of a failed request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ErrorBody {
    /// OSS error code.
    #[serde(default)]
    pub code: String,
    /// Message.
    #[serde(default)]
    pub message: String,
    /// Request id.
    #[serde(default)]
    pub request_id: String,
    /// Detail code.
    #[serde(default, rename = "EC")]
    pub ec: String,
    /// The server's clock, sent with `RequestTimeTooSkewed`.
    #[serde(default)]
    pub server_time: String,
}

impl ListBucketResult {
    /// Parses a ListObjectsV2 body and decodes URL-encoded keys.
    ///
    /// # Errors
    /// A description of what is malformed (the caller adds the request target).
    pub fn parse(body: &[u8]) -> std::result::Result<Self, String> {
        let text = std::str::from_utf8(body).map_err(|e| format!("listing is not UTF-8: {e}"))?;
        let mut page: ListBucketResult = quick_xml::de::from_str(text)
            .map_err(|e| format!("malformed ListBucketResult XML: {e}"))?;
        if page.encoding_type.as_deref() == Some("url") {
            for object in &mut page.contents {
                object.key = url_decode(&object.key)?;
            }
        }
        if page.is_truncated
            && page
                .next_continuation_token
                .as_deref()
                .unwrap_or("")
                .is_empty()
        {
            return Err("listing says IsTruncated but gives no NextContinuationToken".into());
        }
        Ok(page)
    }
}

impl ErrorBody {
    /// Parses an `<Error>` document; `None` when the body is not one (empty, HTML, ...).
    pub(crate) fn parse(body: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(body).ok()?;
        if !text.contains("<Error") {
            return None;
        }
        quick_xml::de::from_str(text).ok()
    }
}

fn url_decode(s: &str) -> std::result::Result<String, String> {
    // OSS encodes spaces as %20, but accept `+` from S3-style encoders too.
    let s = s.replace('+', "%20");
    percent_decode_str(&s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| format!("listed key {s:?} does not URL-decode to UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult>
  <Name>bkt</Name><Prefix>a%2F</Prefix><MaxKeys>1000</MaxKeys>
  <EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>
  <NextContinuationToken>CgJiYw--</NextContinuationToken><KeyCount>2</KeyCount>
  <Contents>
    <Key>a/b%20c%2Bd%25e%3D%26~%3B%E6%97%A5.txt</Key>
    <LastModified>2024-01-01T00:00:00.000Z</LastModified>
    <ETag>"5B3C1A2E053D763E1B002CC607C5A0FE"</ETag><Type>Normal</Type>
    <Size>344606</Size><StorageClass>Standard</StorageClass>
  </Contents>
  <Contents><Key>a/empty</Key><Size>0</Size><ETag>"D41D"</ETag></Contents>
</ListBucketResult>"#;

    #[test]
    fn parses_a_url_encoded_page() {
        let page = ListBucketResult::parse(PAGE.as_bytes()).unwrap();
        assert!(page.is_truncated);
        assert_eq!(page.next_continuation_token.as_deref(), Some("CgJiYw--"));
        assert_eq!(page.contents.len(), 2);
        assert_eq!(page.contents[0].key, "a/b c+d%e=&~;日.txt");
        assert_eq!(page.contents[0].size, 344606);
        assert_eq!(page.contents[1].key, "a/empty");
        assert_eq!(page.contents[1].size, 0);
    }

    #[test]
    fn an_empty_listing_has_no_contents() {
        let page = ListBucketResult::parse(
            b"<ListBucketResult><Name>b</Name><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>",
        )
        .unwrap();
        assert!(page.contents.is_empty());
        assert!(!page.is_truncated);
    }

    #[test]
    fn unencoded_keys_are_kept_as_is() {
        let page = ListBucketResult::parse(
            b"<ListBucketResult><Contents><Key>a%20b</Key><Size>1</Size></Contents></ListBucketResult>",
        )
        .unwrap();
        assert_eq!(page.contents[0].key, "a%20b");
    }

    #[test]
    fn malformed_pages_are_errors() {
        assert!(ListBucketResult::parse(b"<ListBucketResult><Contents><Key>a").is_err());
        assert!(ListBucketResult::parse(
            b"<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>"
        )
        .is_err());
        assert!(ListBucketResult::parse(&[0xff, 0xfe]).is_err());
        assert!(ListBucketResult::parse(b"<ListBucketResult><Contents><Key>x</Key><Size>-1</Size></Contents></ListBucketResult>").is_err());
    }

    #[test]
    fn parses_error_bodies() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message>
<RequestId>5C3D8D2A0ACA54D87B43C048</RequestId><HostId>h</HostId><Key>k</Key><EC>0026-00000001</EC></Error>"#;
        let e = ErrorBody::parse(body).unwrap();
        assert_eq!(e.code, "NoSuchKey");
        assert_eq!(e.request_id, "5C3D8D2A0ACA54D87B43C048");
        assert_eq!(e.ec, "0026-00000001");
        let skew = ErrorBody::parse(
            b"<Error><Code>RequestTimeTooSkewed</Code><ServerTime>2024-01-01T00:00:00.000Z</ServerTime></Error>",
        )
        .unwrap();
        assert_eq!(skew.server_time, "2024-01-01T00:00:00.000Z");
        assert!(ErrorBody::parse(b"<html>bad gateway</html>").is_none());
        assert!(ErrorBody::parse(b"").is_none());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = ListBucketResult::parse(&body);
            let _ = ErrorBody::parse(&body);
        }

        #[test]
        fn arbitrary_keys_round_trip_through_url_encoding(key in ".*", size in 0u64..u64::MAX) {
            let encoded = percent_encoding::utf8_percent_encode(&key, percent_encoding::NON_ALPHANUMERIC);
            let body = format!(
                "<ListBucketResult><EncodingType>url</EncodingType><Contents><Key>{encoded}</Key><Size>{size}</Size></Contents></ListBucketResult>"
            );
            let page = ListBucketResult::parse(body.as_bytes()).unwrap();
            proptest::prop_assert_eq!(&page.contents[0].key, &key);
            proptest::prop_assert_eq!(page.contents[0].size, size);
        }
    }
}
