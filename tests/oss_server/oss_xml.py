"""XML bodies in OSS's dialect: no namespace, `<?xml ...?>` prologue, fixed element order."""

from __future__ import annotations

import datetime
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import quote
from xml.sax.saxutils import escape

_PROLOGUE = '<?xml version="1.0" encoding="UTF-8"?>\n'


def _el(name: str, value: str | int | bool) -> str:
    text = ("true" if value else "false") if isinstance(value, bool) else escape(str(value))
    return f"<{name}>{text}</{name}>"


def iso8601_ms(ts: float) -> str:
    """`2024-01-02T03:04:05.000Z`, the LastModified format of listings.

    OSS keeps seconds only and always prints `.000`; oss2 even rejects other fractions.
    """
    dt = datetime.datetime.fromtimestamp(int(ts), datetime.UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def error_xml(
    code: str,
    message: str,
    request_id: str,
    host_id: str,
    ec: str,
    extra: dict[str, str] | None = None,
) -> bytes:
    parts = [
        _PROLOGUE,
        "<Error>",
        _el("Code", code),
        _el("Message", message),
        _el("RequestId", request_id),
        _el("HostId", host_id),
    ]
    parts.extend(_el(k, v) for k, v in (extra or {}).items())
    parts.append(_el("EC", ec))
    parts.append("</Error>")
    return "".join(parts).encode("utf-8")


@dataclass(frozen=True)
class ListedObject:
    key: str
    last_modified: float
    etag: str
    size: int


@dataclass(frozen=True)
class ListPage:
    """One page of a listing, before encoding: what both ListObjects versions report."""

    bucket: str
    prefix: str
    delimiter: str
    max_keys: int
    objects: list[ListedObject]
    common_prefixes: list[str]
    is_truncated: bool


def _encoder(encoding_type: str) -> Callable[[str], str]:
    if encoding_type == "url":
        # Strict (safe="") so both `unquote` (Python SDK) and `QueryUnescape` (Go SDK) round-trip:
        # neither `+` nor `/` is left for a decoder to interpret.
        return lambda s: quote(s, safe="")
    return lambda s: s


def _contents(page: ListPage, enc: Callable[[str], str]) -> Iterable[str]:
    for obj in page.objects:
        yield (
            "<Contents>"
            + _el("Key", enc(obj.key))
            + _el("LastModified", iso8601_ms(obj.last_modified))
            + _el("ETag", obj.etag)
            + _el("Type", "Normal")
            + _el("Size", obj.size)
            + _el("StorageClass", "Standard")
            + "</Contents>"
        )
    for prefix in page.common_prefixes:
        yield "<CommonPrefixes>" + _el("Prefix", enc(prefix)) + "</CommonPrefixes>"


def list_v2_xml(
    page: ListPage,
    encoding_type: str,
    start_after: str,
    continuation_token: str,
    next_token: str,
) -> bytes:
    enc = _encoder(encoding_type)
    parts = [_PROLOGUE, "<ListBucketResult>", _el("Name", page.bucket)]
    parts.append(_el("Prefix", enc(page.prefix)))
    if start_after:
        parts.append(_el("StartAfter", enc(start_after)))
    if continuation_token:
        parts.append(_el("ContinuationToken", continuation_token))
    parts.append(_el("MaxKeys", page.max_keys))
    if page.delimiter:
        parts.append(_el("Delimiter", enc(page.delimiter)))
    if encoding_type:
        parts.append(_el("EncodingType", encoding_type))
    parts.append(_el("IsTruncated", page.is_truncated))
    if next_token:
        parts.append(_el("NextContinuationToken", next_token))
    parts.append(_el("KeyCount", len(page.objects) + len(page.common_prefixes)))
    parts.extend(_contents(page, enc))
    parts.append("</ListBucketResult>")
    return "".join(parts).encode("utf-8")


def list_v1_xml(page: ListPage, encoding_type: str, marker: str, next_marker: str) -> bytes:
    enc = _encoder(encoding_type)
    parts = [
        _PROLOGUE,
        "<ListBucketResult>",
        _el("Name", page.bucket),
        _el("Prefix", enc(page.prefix)),
        _el("Marker", enc(marker)),
        _el("MaxKeys", page.max_keys),
        _el("Delimiter", enc(page.delimiter)),
    ]
    if encoding_type:
        parts.append(_el("EncodingType", encoding_type))
    parts.append(_el("IsTruncated", page.is_truncated))
    if next_marker:
        parts.append(_el("NextMarker", enc(next_marker)))
    parts.extend(_contents(page, enc))
    parts.append("</ListBucketResult>")
    return "".join(parts).encode("utf-8")


# -- multipart uploads and copies -----------------------------------------------------------


class MalformedXML(ValueError):
    """A request body that is not the XML document the operation takes."""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]  # tolerate a namespace, as OSS does


def parse_complete_xml(body: bytes) -> list[tuple[int, str]]:
    """(PartNumber, ETag) of each `<Part>` of a `<CompleteMultipartUpload>` body, in order."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as e:
        raise MalformedXML(str(e)) from None
    if _local(root.tag) != "CompleteMultipartUpload":
        raise MalformedXML(f"root element is {_local(root.tag)}")
    parts = []
    for el in root:
        if _local(el.tag) != "Part":
            raise MalformedXML(f"unexpected element {_local(el.tag)}")
        fields = {_local(c.tag): (c.text or "").strip() for c in el}
        number, etag = fields.get("PartNumber", ""), fields.get("ETag")
        if not number.isdigit() or etag is None:
            raise MalformedXML("a Part needs a PartNumber and an ETag")
        parts.append((int(number), etag))
    return parts


def initiate_upload_xml(bucket: str, key: str, upload_id: str, encoding_type: str) -> bytes:
    enc = _encoder(encoding_type)
    parts = [_PROLOGUE, "<InitiateMultipartUploadResult>"]
    if encoding_type:
        parts.append(_el("EncodingType", encoding_type))
    parts += [_el("Bucket", bucket), _el("Key", enc(key)), _el("UploadId", upload_id)]
    parts.append("</InitiateMultipartUploadResult>")
    return "".join(parts).encode("utf-8")


def complete_upload_xml(
    location: str, bucket: str, key: str, etag: str, encoding_type: str
) -> bytes:
    enc = _encoder(encoding_type)
    parts = [_PROLOGUE, "<CompleteMultipartUploadResult>"]
    if encoding_type:
        parts.append(_el("EncodingType", encoding_type))
    parts += [
        _el("Location", location),
        _el("Bucket", bucket),
        _el("Key", enc(key)),
        _el("ETag", etag),
        "</CompleteMultipartUploadResult>",
    ]
    return "".join(parts).encode("utf-8")


@dataclass(frozen=True)
class ListedUpload:
    key: str
    upload_id: str
    initiated: float


@dataclass(frozen=True)
class UploadsListing:
    """One page of ListMultipartUploads, with the request's parameters echoed."""

    bucket: str
    prefix: str
    delimiter: str
    key_marker: str
    upload_id_marker: str
    max_uploads: int
    uploads: list[ListedUpload]
    common_prefixes: list[str]
    is_truncated: bool
    next_key_marker: str
    next_upload_id_marker: str


def list_uploads_xml(listing: UploadsListing, encoding_type: str) -> bytes:
    enc = _encoder(encoding_type)
    parts = [
        _PROLOGUE,
        "<ListMultipartUploadsResult>",
        _el("Bucket", listing.bucket),
    ]
    if encoding_type:
        parts.append(_el("EncodingType", encoding_type))
    parts += [
        _el("KeyMarker", enc(listing.key_marker)),
        _el("UploadIdMarker", listing.upload_id_marker),
        _el("NextKeyMarker", enc(listing.next_key_marker)),
        _el("NextUploadIdMarker", listing.next_upload_id_marker),
        _el("Delimiter", enc(listing.delimiter)),
        _el("Prefix", enc(listing.prefix)),
        _el("MaxUploads", listing.max_uploads),
        _el("IsTruncated", listing.is_truncated),
    ]
    for upload in listing.uploads:
        parts.append(
            "<Upload>"
            + _el("Key", enc(upload.key))
            + _el("UploadId", upload.upload_id)
            + _el("StorageClass", "Standard")
            + _el("Initiated", iso8601_ms(upload.initiated))
            + "</Upload>"
        )
    for prefix in listing.common_prefixes:
        parts.append("<CommonPrefixes>" + _el("Prefix", enc(prefix)) + "</CommonPrefixes>")
    parts.append("</ListMultipartUploadsResult>")
    return "".join(parts).encode("utf-8")


@dataclass(frozen=True)
class ListedPart:
    number: int
    last_modified: float
    etag: str
    size: int
    crc64: int


@dataclass(frozen=True)
class PartsListing:
    """One page of ListParts, with the request's parameters echoed."""

    bucket: str
    key: str
    upload_id: str
    part_number_marker: int
    max_parts: int
    parts: list[ListedPart]
    is_truncated: bool
    next_part_number_marker: int


def list_parts_xml(listing: PartsListing, encoding_type: str) -> bytes:
    enc = _encoder(encoding_type)
    parts = [_PROLOGUE, "<ListPartsResult>"]
    if encoding_type:
        parts.append(_el("EncodingType", encoding_type))
    parts += [
        _el("Bucket", listing.bucket),
        _el("Key", enc(listing.key)),
        _el("UploadId", listing.upload_id),
        _el("StorageClass", "Standard"),
        _el("PartNumberMarker", listing.part_number_marker),
        _el("NextPartNumberMarker", listing.next_part_number_marker),
        _el("MaxParts", listing.max_parts),
        _el("IsTruncated", listing.is_truncated),
    ]
    for part in listing.parts:
        parts.append(
            "<Part>"
            + _el("PartNumber", part.number)
            + _el("LastModified", iso8601_ms(part.last_modified))
            + _el("ETag", part.etag)
            + _el("HashCrc64ecma", part.crc64)
            + _el("Size", part.size)
            + "</Part>"
        )
    parts.append("</ListPartsResult>")
    return "".join(parts).encode("utf-8")


def copy_object_xml(etag: str, last_modified: float) -> bytes:
    return (
        _PROLOGUE
        + "<CopyObjectResult>"
        + _el("ETag", etag)
        + _el("LastModified", iso8601_ms(last_modified))
        + "</CopyObjectResult>"
    ).encode("utf-8")
