//! The XML documents of multipart uploads and server-side copies: the upload id the server
//! hands out, the part list that completes an upload, and what a completion or a copy answers.
//! OSS and S3 agree on the names; S3's namespace on the root is ignored like any attribute.
//!
//! <https://www.alibabacloud.com/help/en/oss/developer-reference/initiatemultipartupload>
//! <https://www.alibabacloud.com/help/en/oss/developer-reference/completemultipartupload>
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateMultipartUpload.html>
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/API_CompleteMultipartUpload.html>
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html>

use quick_xml::events::Event;
use serde::Deserialize;

use super::xml::ErrorBody;

/// The answer to InitiateMultipartUpload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InitiateMultipartUploadResult {
    #[serde(default)]
    upload_id: String,
}

/// The upload id of an InitiateMultipartUpload answer.
///
/// # Errors
/// What is wrong with the document (not XML, no upload id).
pub(crate) fn parse_upload_id(body: &[u8]) -> Result<String, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("not UTF-8: {e}"))?;
    let parsed: InitiateMultipartUploadResult =
        quick_xml::de::from_str(text).map_err(|e| format!("not an upload: {e}"))?;
    if parsed.upload_id.is_empty() {
        return Err("no UploadId in the answer".into());
    }
    Ok(parsed.upload_id)
}

/// What a 200 answer to CompleteMultipartUpload or CopyObject says. S3 sends the 200 before
/// the work is done (and whitespace while it runs), so a failure can still arrive as an
/// `<Error>` document under that 200; the API reference says to retry its `InternalError`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Finished {
    /// The new object's ETag as sent (quoted); empty when the answer had no document or the
    /// document no ETag (the ETag header is then the one to use).
    ETag(String),
    /// The error the server reported after its 200.
    Failed(ErrorBody),
}

/// A `CompleteMultipartUploadResult` or `CopyObjectResult`.
#[derive(Deserialize)]
struct Written {
    #[serde(default, rename = "ETag")]
    etag: String,
}

/// What a 200 answer to CompleteMultipartUpload holds.
///
/// # Errors
/// What is wrong with the body (not XML, another document).
pub(crate) fn parse_completed(body: &[u8]) -> Result<Finished, String> {
    parse_finished(body, "CompleteMultipartUploadResult")
}

/// What a 200 answer to CopyObject holds.
///
/// # Errors
/// What is wrong with the body (not XML, another document).
pub(crate) fn parse_copied(body: &[u8]) -> Result<Finished, String> {
    parse_finished(body, "CopyObjectResult")
}

fn parse_finished(body: &[u8], root: &str) -> Result<Finished, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("not UTF-8: {e}"))?;
    // The whitespace S3 sends to keep a long completion's connection open precedes the document.
    let text = text.trim_start();
    match root_name(text)?.as_deref() {
        None => Ok(Finished::ETag(String::new())),
        Some("Error") => Ok(Finished::Failed(
            quick_xml::de::from_str(text).map_err(|e| format!("malformed Error XML: {e}"))?,
        )),
        Some(name) if name == root => {
            let written: Written =
                quick_xml::de::from_str(text).map_err(|e| format!("malformed {root} XML: {e}"))?;
            Ok(Finished::ETag(written.etag))
        }
        Some(other) => Err(format!("expected {root}, got {other}")),
    }
}

/// The local name of the document's root element; `None` for a document without one.
fn root_name(text: &str) -> Result<Option<String>, String> {
    let mut reader = quick_xml::Reader::from_str(text);
    loop {
        match reader.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) => {
                return Ok(Some(
                    String::from_utf8_lossy(e.local_name().as_ref()).into_owned(),
                ))
            }
            Ok(Event::Eof) => return Ok(None),
            Ok(_) => {}
            Err(e) => return Err(format!("not XML: {e}")),
        }
    }
}

/// One part as CompleteMultipartUpload lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListedPart {
    pub(crate) number: u32,
    pub(crate) etag: String,
    /// `(element, value)` of the part's CRC, where the upload was created with one (S3).
    pub(crate) checksum: Option<(&'static str, String)>,
}

/// The CompleteMultipartUpload body listing the parts, in the order given.
pub(crate) fn complete_body(parts: &[ListedPart]) -> String {
    let mut xml = String::from("<CompleteMultipartUpload>");
    for part in parts {
        xml.push_str("<Part><PartNumber>");
        xml.push_str(&part.number.to_string());
        xml.push_str("</PartNumber><ETag>");
        xml.push_str(&quick_xml::escape::escape(part.etag.as_str()));
        xml.push_str("</ETag>");
        if let Some((element, value)) = &part.checksum {
            let value = quick_xml::escape::escape(value.as_str());
            xml.push_str(&format!("<{element}>{value}</{element}>"));
        }
        xml.push_str("</Part>");
    }
    xml.push_str("</CompleteMultipartUpload>");
    xml
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_ids_are_read_and_their_absence_is_an_error() {
        let body = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InitiateMultipartUploadResult>\
            <Bucket>bkt</Bucket><Key>a/b</Key><UploadId>0004B9894A22E5B1888A1E29F823</UploadId>\
            </InitiateMultipartUploadResult>";
        assert_eq!(
            parse_upload_id(body).as_deref(),
            Ok("0004B9894A22E5B1888A1E29F823")
        );
        assert!(parse_upload_id(b"<InitiateMultipartUploadResult/>").is_err());
        assert!(parse_upload_id(b"not xml <").is_err());
        assert!(parse_upload_id(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn s3_upload_ids_are_read_under_the_namespace() {
        // The sample response of the CreateMultipartUpload API reference.
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>example-bucket</Bucket>
  <Key>example-object</Key>
  <UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId>
</InitiateMultipartUploadResult>"#;
        assert_eq!(
            parse_upload_id(body).as_deref(),
            Ok("VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA")
        );
    }

    #[test]
    fn a_completion_answers_its_etag_or_a_late_error() {
        // The two sample responses of the CompleteMultipartUpload API reference.
        let done = br#"<?xml version="1.0" encoding="UTF-8"?>
<CompleteMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Location>http://Example-Bucket.s3.Region.amazonaws.com/Example-Object</Location>
  <Bucket>Example-Bucket</Bucket>
  <Key>Example-Object</Key>
  <ETag>"3858f62230ac3c915f300c664312c11f-9"</ETag>
</CompleteMultipartUploadResult>"#;
        assert_eq!(
            parse_completed(done),
            Ok(Finished::ETag(
                "\"3858f62230ac3c915f300c664312c11f-9\"".into()
            ))
        );
        let failed = br#"<?xml version="1.0" encoding="UTF-8"?>

<Error>
  <Code>InternalError</Code>
  <Message>We encountered an internal error. Please try again.</Message>
  <RequestId>656c76696e6727732072657175657374</RequestId>
  <HostId>Uuag1LuByRx9e6j5Onimru9pO4ZVKnJ2Qz7/C1NPcfTWAtRPfTaOFg==</HostId>
</Error>"#;
        let Ok(Finished::Failed(error)) = parse_completed(failed) else {
            panic!("a 200 carrying <Error> is a failure");
        };
        assert_eq!(error.code, "InternalError");
        assert_eq!(error.request_id, "656c76696e6727732072657175657374");
    }

    #[test]
    fn keep_alive_whitespace_and_oss_documents_are_read_too() {
        let padded = b"   \n  \n<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
            <CompleteMultipartUploadResult><ETag>\"A-2\"</ETag></CompleteMultipartUploadResult>";
        assert_eq!(
            parse_completed(padded),
            Ok(Finished::ETag("\"A-2\"".into()))
        );
        let oss = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CompleteMultipartUploadResult>\
            <EncodingType>url</EncodingType><Location>http://b.oss-cn-hangzhou.aliyuncs.com/k</Location>\
            <Bucket>b</Bucket><Key>k</Key><ETag>\"097DE458AD02B5F89F9D0530231876B7-3\"</ETag>\
            </CompleteMultipartUploadResult>";
        assert_eq!(
            parse_completed(oss),
            Ok(Finished::ETag(
                "\"097DE458AD02B5F89F9D0530231876B7-3\"".into()
            ))
        );
        // No document: the ETag header is the one to use.
        assert_eq!(parse_completed(b""), Ok(Finished::ETag(String::new())));
        assert_eq!(parse_completed(b"  \n"), Ok(Finished::ETag(String::new())));
    }

    #[test]
    fn a_copy_answers_its_etag_or_a_late_error() {
        // The sample response of the CopyObject API reference.
        let copied = b"<CopyObjectResult>\
            <LastModified>2009-10-28T22:32:00</LastModified>\
            <ETag>\"9b2cf535f27731c974343645a3985328\"</ETag>\
            </CopyObjectResult>";
        assert_eq!(
            parse_copied(copied),
            Ok(Finished::ETag(
                "\"9b2cf535f27731c974343645a3985328\"".into()
            ))
        );
        let namespaced = b"<CopyObjectResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
            <ETag>&quot;E&quot;</ETag></CopyObjectResult>";
        assert_eq!(parse_copied(namespaced), Ok(Finished::ETag("\"E\"".into())));
        let failed = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
        assert!(matches!(parse_copied(failed), Ok(Finished::Failed(e)) if e.code == "SlowDown"));
    }

    #[test]
    fn other_documents_and_garbage_are_errors() {
        let err = parse_copied(b"<CompleteMultipartUploadResult/>").unwrap_err();
        assert!(err.contains("expected CopyObjectResult"), "{err}");
        assert!(parse_completed(b"<CopyObjectResult/>").is_err());
        assert!(parse_completed(b"<html>bad gateway").is_err());
        assert!(parse_completed(b"not xml <").is_err());
        assert!(parse_completed(&[0xff, 0xfe]).is_err());
        assert!(parse_completed(b"<CompleteMultipartUploadResult><ETag>x</Key>").is_err());
    }

    #[test]
    fn the_part_list_keeps_order_and_escapes_etags() {
        let part = |number: u32, etag: &str, checksum| ListedPart {
            number,
            etag: etag.to_string(),
            checksum,
        };
        let parts = vec![part(1, "\"AB\"", None), part(2, "<&>", None)];
        let xml = complete_body(&parts);
        assert_eq!(
            xml,
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&quot;AB&quot;</ETag>\
             </Part><Part><PartNumber>2</PartNumber><ETag>&lt;&amp;&gt;</ETag></Part>\
             </CompleteMultipartUpload>"
        );
        let crc = Some(("ChecksumCRC64NVME", "rosUhgp5mIg=".to_string()));
        assert_eq!(
            complete_body(&[part(1, "\"e\"", crc)]),
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&quot;e&quot;</ETag>\
             <ChecksumCRC64NVME>rosUhgp5mIg=</ChecksumCRC64NVME></Part></CompleteMultipartUpload>"
        );
    }
}
