"""The multipart-upload operations over HTTP; the upload state itself is in multipart.py."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING
from urllib.parse import quote

from .errors import OssError
from .faults import Fault
from .multipart import MAX_PART_NUMBER, MAX_PART_SIZE
from .operations import DataRequest, bounded_int, encoding_type
from .oss_xml import (
    MalformedXML,
    complete_upload_xml,
    initiate_upload_xml,
    list_parts_xml,
    list_uploads_xml,
    parse_complete_xml,
)
from .store import parse_content_md5
from .write_ops import check_body_size, forbid_overwrite, md5_header

if TYPE_CHECKING:
    from .handler import OssRequestHandler

# A Complete listing 10,000 parts is about 1 MB of XML.
_MAX_COMPLETE_BODY = 4 << 20
_XML = {"Content-Type": "application/xml"}


def _malformed(detail: str) -> OssError:
    return OssError(
        400,
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published "
        f"schema: {detail}",
    )


def initiate(h: OssRequestHandler, r: DataRequest, fault: Fault) -> None:
    encoding = encoding_type(r.query)
    h.discard_body()
    content_type = r.headers.get("content-type", "application/octet-stream")
    upload = h.server.state.uploads.initiate(r.bucket, r.object_key, content_type)
    body = initiate_upload_xml(r.bucket, r.object_key, upload.upload_id, encoding)
    h.send_bytes(200, _XML, body, fault)


def upload_part(h: OssRequestHandler, r: DataRequest, fault: Fault) -> None:
    number = r.query.get("partNumber", "")
    if not number.isdigit() or not 1 <= int(number) <= MAX_PART_NUMBER:
        raise OssError(
            400,
            "InvalidArgument",
            f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive.",
            {"ArgumentName": "partNumber", "ArgumentValue": number},
        )
    expected_md5 = parse_content_md5(r.headers.get("content-md5"))
    check_body_size(h, MAX_PART_SIZE)
    part = h.server.state.uploads.upload_part(
        r.bucket,
        r.object_key,
        r.query.get("uploadId", ""),
        int(number),
        h.iter_body(),
        expected_md5,
    )
    out = {
        "ETag": part.etag,
        "x-oss-hash-crc64ecma": str(part.crc64),
        "Content-MD5": md5_header(part.etag),
    }
    h.send_bytes(200, out, b"", fault)


def complete(h: OssRequestHandler, r: DataRequest, fault: Fault) -> None:
    encoding = encoding_type(r.query)
    uploads = h.server.state.uploads
    upload_id = r.query.get("uploadId", "")
    uploads.check(r.bucket, r.object_key, upload_id)  # NoSuchUpload before judging the body
    expected_md5 = parse_content_md5(r.headers.get("content-md5"))
    body = h.read_body(_MAX_COMPLETE_BODY)
    if expected_md5 is not None and hashlib.md5(body).digest() != expected_md5:
        raise OssError(
            400, "InvalidDigest", "The Content-MD5 you specified did not match what we received."
        )
    listed: list[tuple[int, str]] | None
    if r.headers.get("x-oss-complete-all", "").strip().lower() == "yes":
        if body.strip():
            raise OssError(
                400,
                "InvalidArgument",
                "Should not specify both the complete-all header and a request body.",
            )
        listed = None
    else:
        try:
            listed = parse_complete_xml(body)
        except MalformedXML as e:
            raise _malformed(str(e)) from None
    meta = uploads.complete(r.bucket, r.object_key, upload_id, listed, forbid_overwrite(r.headers))
    out = {**_XML, "ETag": meta.etag}
    if meta.crc64 is not None:
        out["x-oss-hash-crc64ecma"] = str(meta.crc64)
    host = h.headers.get("Host") or "oss-test-server"
    location = f"http://{host}/{r.bucket}/{quote(r.object_key)}"
    h.send_bytes(
        200, out, complete_upload_xml(location, r.bucket, r.object_key, meta.etag, encoding), fault
    )


def abort(h: OssRequestHandler, r: DataRequest, fault: Fault) -> None:
    h.discard_body()
    h.server.state.uploads.abort(r.bucket, r.object_key, r.query.get("uploadId", ""))
    h.send_bytes(204, {}, b"", fault)


def list_uploads(h: OssRequestHandler, r: DataRequest, fault: Fault) -> None:
    encoding = encoding_type(r.query)
    max_uploads = bounded_int(r.query, "max-uploads", 1000, 1, 1000)
    h.discard_body()
    listing = h.server.state.uploads.list_uploads(
        r.bucket,
        r.query.get("prefix", ""),
        r.query.get("delimiter", ""),
        r.query.get("key-marker", ""),
        r.query.get("upload-id-marker", ""),
        max_uploads,
    )
    h.send_bytes(200, _XML, list_uploads_xml(listing, encoding), fault)


def list_parts(h: OssRequestHandler, r: DataRequest, fault: Fault) -> None:
    encoding = encoding_type(r.query)
    max_parts = bounded_int(r.query, "max-parts", 1000, 1, 1000)
    marker = bounded_int(r.query, "part-number-marker", 0, 0, MAX_PART_NUMBER)
    h.discard_body()
    listing = h.server.state.uploads.list_parts(
        r.bucket, r.object_key, r.query.get("uploadId", ""), marker, max_parts
    )
    h.send_bytes(200, _XML, list_parts_xml(listing, encoding), fault)
