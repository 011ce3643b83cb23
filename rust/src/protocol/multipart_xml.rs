//! The XML documents of multipart uploads: the upload id OSS hands out, and the part list that
//! completes an upload.
//!
//! <https://www.alibabacloud.com/help/en/oss/developer-reference/initiatemultipartupload>
//! <https://www.alibabacloud.com/help/en/oss/developer-reference/completemultipartupload>

use serde::Deserialize;

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

/// The CompleteMultipartUpload body listing `(part number, ETag)`, in the order given.
pub(crate) fn complete_body(parts: &[(u32, String)]) -> String {
    let mut xml = String::from("<CompleteMultipartUpload>");
    for (number, etag) in parts {
        xml.push_str("<Part><PartNumber>");
        xml.push_str(&number.to_string());
        xml.push_str("</PartNumber><ETag>");
        xml.push_str(&quick_xml::escape::escape(etag.as_str()));
        xml.push_str("</ETag></Part>");
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
    fn the_part_list_keeps_order_and_escapes_etags() {
        let parts = vec![(1, "\"AB\"".to_string()), (2, "<&>".to_string())];
        let xml = complete_body(&parts);
        assert_eq!(
            xml,
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&quot;AB&quot;</ETag>\
             </Part><Part><PartNumber>2</PartNumber><ETag>&lt;&amp;&gt;</ETag></Part>\
             </CompleteMultipartUpload>"
        );
    }
}
