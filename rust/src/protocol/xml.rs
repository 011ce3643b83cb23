//! The XML documents OSS and S3 answer with: `ListBucketResult` and `Error`.
//!
//! <https://www.alibabacloud.com/help/en/oss/developer-reference/listobjectsv2>
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html>
//!
//! The two agree on element names; S3 adds the namespace
//! `xmlns="http://s3.amazonaws.com/doc/2006-03-01/"` on the root, which is an attribute the
//! parser ignores, as it ignores the root's name and every element it has no field for.
//!
//! With `encoding-type=url` both encode `Key`, `Prefix`, `StartAfter`, `Delimiter` and
//! `CommonPrefixes/Prefix`, never the continuation tokens. What "url" means is specified
//! nowhere exactly: S3 encodes as an HTML form does, space as `+` and `+` as `%2B`
//! (<https://github.com/boto/boto/pull/2654>, which is why botocore decodes with
//! `unquote_plus`), and other reserved or non-ASCII bytes as `%XX` of their UTF-8
//! (`test_file(3).png` → `test_file%283%29.png`, the API reference's example); OSS encodes
//! space as `%20`. Decoding `+` as space and `%XX` as a byte reads both, as no encoder leaves
//! a literal `+` in a key.

use percent_encoding::percent_decode_str;
use serde::Deserialize;

/// One page of a ListObjectsV2 answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListBucketResult {
    /// Objects on this page.
    #[serde(default)]
    pub contents: Vec<ObjectSummary>,
    /// Keys rolled up at the delimiter, when the request gave one.
    #[serde(default)]
    pub common_prefixes: Vec<CommonPrefix>,
    /// The prefix asked for, echoed.
    #[serde(default)]
    pub prefix: String,
    /// The delimiter asked for, echoed.
    #[serde(default)]
    pub delimiter: Option<String>,
    /// The key the listing was asked to start after, echoed.
    #[serde(default)]
    pub start_after: Option<String>,
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

/// One `<CommonPrefixes>` entry: a key prefix ending at the delimiter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CommonPrefix {
    /// The prefix.
    #[serde(default)]
    pub prefix: String,
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
    /// Parses a ListObjectsV2 body (OSS's or S3's) and decodes what `encoding-type=url`
    /// encoded.
    ///
    /// # Errors
    /// A description of what is malformed (the caller adds the request target).
    pub fn parse(body: &[u8]) -> std::result::Result<Self, String> {
        let text = std::str::from_utf8(body).map_err(|e| format!("listing is not UTF-8: {e}"))?;
        let mut page: ListBucketResult = quick_xml::de::from_str(text)
            .map_err(|e| format!("malformed ListBucketResult XML: {e}"))?;
        if page.encoding_type.as_deref() == Some("url") {
            page.decode_names()?;
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

impl ListBucketResult {
    /// Decodes every element `encoding-type=url` encodes; the tokens are left as sent.
    fn decode_names(&mut self) -> std::result::Result<(), String> {
        for object in &mut self.contents {
            object.key = url_decode(&object.key)?;
        }
        for common in &mut self.common_prefixes {
            common.prefix = url_decode(&common.prefix)?;
        }
        self.prefix = url_decode(&self.prefix)?;
        for echoed in [&mut self.delimiter, &mut self.start_after]
            .into_iter()
            .flatten()
        {
            *echoed = url_decode(echoed)?;
        }
        Ok(())
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

/// `+` → space, then `%XX` → byte (see the module's docs for why both).
fn url_decode(s: &str) -> std::result::Result<String, String> {
    let s = s.replace('+', "%20");
    percent_decode_str(&s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| format!("listed name {s:?} does not URL-decode to UTF-8"))
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

    // The four sample responses of the ListObjectsV2 API reference, as published:
    // https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html#API_ListObjectsV2_Examples
    const AWS_LISTING_KEYS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
    <Name>bucket</Name>
    <Prefix/>
    <KeyCount>205</KeyCount>
    <MaxKeys>1000</MaxKeys>
    <IsTruncated>false</IsTruncated>
    <Contents>
        <Key>my-image.jpg</Key>
        <LastModified>2009-10-12T17:50:30.000Z</LastModified>
        <ETag>"fba9dede5f27731c9771645a39863328"</ETag>
        <Size>434234</Size>
        <StorageClass>STANDARD</StorageClass>
    </Contents>
</ListBucketResult>"#;

    const AWS_START_AFTER: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>example-bucket</Name>
  <Prefix>E</Prefix>
  <StartAfter>ExampleGuide.pdf</StartAfter>
  <KeyCount>1</KeyCount>
  <MaxKeys>3</MaxKeys>
  <IsTruncated>false</IsTruncated>
  <Contents>
    <Key>ExampleObject.txt</Key>
    <LastModified>2013-09-17T18:07:53.000Z</LastModified>
    <ETag>"599bab3ed2c697f1d26842727561fd94"</ETag>
    <Size>857</Size>
    <StorageClass>REDUCED_REDUNDANCY</StorageClass>
  </Contents>
</ListBucketResult>"#;

    const AWS_DELIMITER: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>example-bucket</Name>
  <Prefix>photos/2006/</Prefix>
  <KeyCount>3</KeyCount>
  <MaxKeys>1000</MaxKeys>
  <Delimiter>/</Delimiter>
  <IsTruncated>false</IsTruncated>
  <Contents>
    <Key>photos/2006/</Key>
    <LastModified>2016-04-30T23:51:29.000Z</LastModified>
    <ETag>"d41d8cd98f00b204e9800998ecf8427e"</ETag>
    <Size>0</Size>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
  <CommonPrefixes>
    <Prefix>photos/2006/February/</Prefix>
  </CommonPrefixes>
  <CommonPrefixes>
    <Prefix>photos/2006/January/</Prefix>
  </CommonPrefixes>
</ListBucketResult>"#;

    const AWS_CONTINUED: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>bucket</Name>
  <Prefix></Prefix>
  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
  <KeyCount>1000</KeyCount>
  <MaxKeys>1000</MaxKeys>
  <IsTruncated>true</IsTruncated>
  <Contents>
    <Key>happyface.jpg</Key>
    <LastModified>2014-11-21T19:40:05.000Z</LastModified>
    <ETag>"70ee1738b6b21e2c8a43f3a5ab0eee71"</ETag>
    <Size>11</Size>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
</ListBucketResult>"#;

    fn keys(page: &ListBucketResult) -> Vec<(&str, u64, &str)> {
        page.contents
            .iter()
            .map(|o| (o.key.as_str(), o.size, o.etag.as_str()))
            .collect()
    }

    #[test]
    fn parses_the_aws_reference_samples() {
        let page = ListBucketResult::parse(AWS_LISTING_KEYS.as_bytes()).unwrap();
        assert_eq!(
            keys(&page),
            [(
                "my-image.jpg",
                434234,
                "\"fba9dede5f27731c9771645a39863328\""
            )]
        );
        assert_eq!(page.prefix, "");
        assert!(!page.is_truncated);

        let page = ListBucketResult::parse(AWS_START_AFTER.as_bytes()).unwrap();
        assert_eq!(
            keys(&page),
            [(
                "ExampleObject.txt",
                857,
                "\"599bab3ed2c697f1d26842727561fd94\""
            )]
        );
        assert_eq!(page.prefix, "E");
        assert_eq!(page.start_after.as_deref(), Some("ExampleGuide.pdf"));

        let page = ListBucketResult::parse(AWS_DELIMITER.as_bytes()).unwrap();
        assert_eq!(
            keys(&page),
            [("photos/2006/", 0, "\"d41d8cd98f00b204e9800998ecf8427e\"")]
        );
        assert_eq!(page.delimiter.as_deref(), Some("/"));
        let common: Vec<&str> = page
            .common_prefixes
            .iter()
            .map(|c| c.prefix.as_str())
            .collect();
        assert_eq!(common, ["photos/2006/February/", "photos/2006/January/"]);

        let page = ListBucketResult::parse(AWS_CONTINUED.as_bytes()).unwrap();
        assert!(page.is_truncated);
        assert_eq!(
            page.next_continuation_token.as_deref(),
            Some("1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=")
        );
        assert_eq!(
            keys(&page),
            [("happyface.jpg", 11, "\"70ee1738b6b21e2c8a43f3a5ab0eee71\"")]
        );
    }

    /// A url-encoded S3 page as AWS writes one: space as `+`, `+` as `%2B`, `%` as `%25`,
    /// parentheses as the API reference's `test_file%283%29.png`, UTF-8 bytes as `%XX`. The
    /// continuation token is not encoded, so its `+`, `/` and `%2F` stay as sent.
    const S3_URL_ENCODED: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>bucket</Name>
  <Prefix>data+set%2B1/</Prefix>
  <StartAfter>data+set%2B1/a+b</StartAfter>
  <Delimiter>%7C</Delimiter>
  <EncodingType>url</EncodingType>
  <KeyCount>4</KeyCount><MaxKeys>1000</MaxKeys>
  <IsTruncated>true</IsTruncated>
  <NextContinuationToken>1ue+Gcx/LP%2FRx1T=</NextContinuationToken>
  <Contents><Key>data+set%2B1/test_file%283%29.png</Key><Size>1</Size></Contents>
  <Contents><Key>data+set%2B1/a+b%2Bc%25d%2520</Key><Size>2</Size></Contents>
  <Contents><Key>data+set%2B1/%E6%97%A5%E6%9C%AC+%C3%A9t%C3%A9.txt</Key><Size>3</Size></Contents>
  <CommonPrefixes><Prefix>data+set%2B1/x%7C</Prefix></CommonPrefixes>
</ListBucketResult>"#;

    #[test]
    fn decodes_every_name_s3_url_encodes_and_never_the_token() {
        let page = ListBucketResult::parse(S3_URL_ENCODED.as_bytes()).unwrap();
        let names: Vec<&str> = page.contents.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(
            names,
            [
                "data set+1/test_file(3).png",
                "data set+1/a b+c%d%20",
                "data set+1/日本 été.txt",
            ]
        );
        assert_eq!(page.prefix, "data set+1/");
        assert_eq!(page.start_after.as_deref(), Some("data set+1/a b"));
        assert_eq!(page.delimiter.as_deref(), Some("|"));
        assert_eq!(page.common_prefixes[0].prefix, "data set+1/x|");
        assert_eq!(
            page.next_continuation_token.as_deref(),
            Some("1ue+Gcx/LP%2FRx1T=")
        );
    }

    #[test]
    fn the_same_page_without_encoding_type_is_taken_literally() {
        let raw = S3_URL_ENCODED.replace("<EncodingType>url</EncodingType>", "");
        let page = ListBucketResult::parse(raw.as_bytes()).unwrap();
        assert_eq!(page.contents[1].key, "data+set%2B1/a+b%2Bc%25d%2520");
        assert_eq!(page.prefix, "data+set%2B1/");
    }

    #[test]
    fn parses_s3_error_bodies_as_oss_ones() {
        // The sample of https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<Error>
  <Code>NoSuchKey</Code>
  <Message>The resource you requested does not exist</Message>
  <Resource>/mybucket/myfoto.jpg</Resource>
  <RequestId>4442587FB7D0A2F9</RequestId>
</Error>"#;
        let e = ErrorBody::parse(body).unwrap();
        assert_eq!(e.code, "NoSuchKey");
        assert_eq!(e.message, "The resource you requested does not exist");
        assert_eq!(e.request_id, "4442587FB7D0A2F9");
        assert_eq!(e.ec, "");
        // S3's clock-skew answer carries ServerTime as OSS's does, beside fields OSS lacks.
        let skew = ErrorBody::parse(
            b"<Error><Code>RequestTimeTooSkewed</Code><Message>The difference between the request \
              time and the current time is too large.</Message>\
              <RequestTime>20240101T000000Z</RequestTime>\
              <ServerTime>2024-01-01T02:00:00Z</ServerTime>\
              <MaxAllowedSkewMilliseconds>900000</MaxAllowedSkewMilliseconds>\
              <RequestId>R</RequestId><HostId>H</HostId></Error>",
        )
        .unwrap();
        assert_eq!(skew.code, "RequestTimeTooSkewed");
        assert_eq!(skew.server_time, "2024-01-01T02:00:00Z");
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

        #[test]
        fn keys_encoded_as_s3_does_round_trip(key in ".*") {
            // Space as `+`: a literal `%` is `%25`, so `%20` in the output is only ever a space.
            let encoded = percent_encoding::utf8_percent_encode(&key, percent_encoding::NON_ALPHANUMERIC)
                .to_string()
                .replace("%20", "+");
            let body = format!(
                "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Prefix>{encoded}</Prefix>\
                 <EncodingType>url</EncodingType><Contents><Key>{encoded}</Key></Contents></ListBucketResult>"
            );
            let page = ListBucketResult::parse(body.as_bytes()).unwrap();
            proptest::prop_assert_eq!(&page.contents[0].key, &key);
            proptest::prop_assert_eq!(&page.prefix, &key);
        }
    }
}
