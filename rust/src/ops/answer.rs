//! What operations read from an answer's headers: the ETag and the CRC the server states, and
//! the check of that CRC against the bytes sent; and what a 200 to a completion or a copy says
//! in its body.

use crate::error::{Error, Result, ServiceError};
use crate::http::answer::Answer;
use crate::http::client::OssClient;
use crate::ops::crc::Checksum;
use crate::protocol::multipart_xml::Finished;
use crate::protocol::Target;

/// A header of `response` as text, when present and visible ASCII.
pub(crate) fn header(response: &Answer, name: &str) -> Option<String> {
    response.header(name).map(str::to_string)
}

/// The ETag of an answer, as sent (quoted); empty when missing.
pub(crate) fn etag(response: &Answer) -> String {
    header(response, "etag").unwrap_or_default()
}

/// The CRC the server states for the object (or part) in its answer, in the first of the
/// protocol's checksum headers that holds one.
///
/// # Errors
/// `Protocol` when such a header is there but holds no CRC.
pub(crate) fn stated_checksum(
    client: &OssClient,
    target: &Target,
    response: &Answer,
) -> Result<Option<Checksum>> {
    for stated in client.dialect().checksum_headers {
        let Some(value) = header(response, stated.name) else {
            continue;
        };
        match stated.parse(&value) {
            Ok(Some(value)) => {
                return Ok(Some(Checksum {
                    crc: stated.crc,
                    value,
                }))
            }
            Ok(None) => {}
            Err(reason) => {
                return Err(Error::Protocol {
                    target: target.clone(),
                    reason,
                })
            }
        }
    }
    Ok(None)
}

/// The CRC the server states, when it is of the protocol's own algorithm (the one taken of
/// every upload): what a written object is compared with.
///
/// # Errors
/// As [`stated_checksum`].
pub(crate) fn stated_crc(
    client: &OssClient,
    target: &Target,
    response: &Answer,
) -> Result<Option<u64>> {
    let stated = stated_checksum(client, target, response)?;
    Ok(stated
        .filter(|c| c.crc == client.dialect().crc)
        .map(|c| c.value))
}

/// Fails when the server stated a CRC other than that of the bytes sent: the server stored
/// something else, and the write must not be trusted.
///
/// # Errors
/// `Protocol` naming both values.
pub(crate) fn check_crc(
    client: &OssClient,
    target: &Target,
    what: &str,
    stated: Option<u64>,
    sent: u64,
) -> Result<()> {
    match stated {
        Some(stated) if stated != sent => Err(Error::Protocol {
            target: target.clone(),
            reason: format!(
                "{} mismatch after {what}: the server stored {stated}, the bytes sent have {sent}",
                client.dialect().crc.name()
            ),
        }),
        _ => Ok(()),
    }
}

/// The ETag of what a CompleteMultipartUpload or CopyObject made, from its 200 answer: the
/// document's ETag (S3 sends it only there), else the header's. S3 may report a failure under
/// that 200, as an `<Error>` document: it becomes the error it names.
///
/// # Errors
/// `Service` with the document's code when the work failed after the 200.
pub(crate) fn finished_etag(
    parsed: std::result::Result<Finished, String>,
    header_etag: String,
    method: &str,
    target: &Target,
) -> Result<String> {
    match parsed {
        Ok(Finished::ETag(etag)) if !etag.is_empty() => Ok(etag),
        Ok(Finished::Failed(body)) => Err(Error::from(ServiceError {
            method: method.to_string(),
            status: 200,
            code: body.code,
            message: body.message,
            request_id: body.request_id,
            ec: body.ec,
            server_time: body.server_time,
            target: target.clone(),
        })),
        // OSS answers as documented; a body we cannot read changes nothing that was done.
        Ok(Finished::ETag(_)) | Err(_) => Ok(header_etag),
    }
}
