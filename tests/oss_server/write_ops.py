"""Single-request writes: PutObject, CopyObject, DeleteObject."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING
from urllib.parse import unquote

from .errors import OssError
from .faults import Fault
from .operations import DataRequest
from .oss_xml import copy_object_xml
from .store import ObjectMeta, parse_content_md5

if TYPE_CHECKING:
    from .handler import OssRequestHandler

MAX_OBJECT_SIZE = 5 << 30  # the largest PutObject (and part) OSS accepts
_COPY_CONDITIONS = (
    "x-oss-copy-source-if-none-match",
    "x-oss-copy-source-if-modified-since",
    "x-oss-copy-source-if-unmodified-since",
)


def forbid_overwrite(headers: dict[str, str]) -> bool:
    return headers.get("x-oss-forbid-overwrite", "").strip().lower() == "true"


def check_body_size(h: OssRequestHandler, limit: int = MAX_OBJECT_SIZE) -> None:
    length = h.content_length()
    if length is not None and length > limit:
        raise OssError(
            400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size."
        )


def md5_header(etag: str) -> str:
    """Content-MD5 (base64) of a plain object or part, from its MD5 ETag."""
    return base64.b64encode(bytes.fromhex(etag.strip('"'))).decode("ascii")


def _written_headers(meta: ObjectMeta) -> dict[str, str]:
    out = {"ETag": meta.etag}
    if meta.crc64 is not None:
        out["x-oss-hash-crc64ecma"] = str(meta.crc64)
    return out


def put_object(h: OssRequestHandler, r: DataRequest, fault: Fault) -> None:
    expected_md5 = parse_content_md5(r.headers.get("content-md5"))
    check_body_size(h)
    meta = h.server.state.store.put(
        r.bucket,
        r.object_key,
        h.iter_body(),
        r.headers.get("content-type", "application/octet-stream"),
        expected_md5,
        forbid_overwrite(r.headers),
    )
    out = {**_written_headers(meta), "Content-MD5": md5_header(meta.etag)}
    h.send_bytes(200, out, b"", fault)


def parse_copy_source(value: str) -> tuple[str, str]:
    """(bucket, key) of `x-oss-copy-source: /bucket/url-encoded-key`."""
    path, _, version = value.strip().partition("?")
    if version:
        raise OssError(501, "NotImplemented", "Copying an object version is not supported.")
    bucket, sep, key = unquote(path, errors="strict").removeprefix("/").partition("/")
    if not value.startswith("/") or not bucket or not sep or not key:
        raise OssError(
            400,
            "InvalidArgument",
            "x-oss-copy-source must be /SourceBucketName/SourceObjectName.",
        )
    return bucket, key


def copy_object(h: OssRequestHandler, r: DataRequest, fault: Fault) -> None:
    try:
        source = parse_copy_source(r.headers["x-oss-copy-source"])
    except UnicodeError:
        raise OssError(400, "InvalidArgument", "x-oss-copy-source is not valid UTF-8.") from None
    unsupported = [c for c in _COPY_CONDITIONS if c in r.headers]
    if unsupported:
        raise OssError(501, "NotImplemented", f"{unsupported} are not supported.")
    directive = r.headers.get("x-oss-metadata-directive", "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise OssError(400, "InvalidArgument", "x-oss-metadata-directive must be COPY or REPLACE.")
    content_type = None
    if directive == "REPLACE":
        content_type = r.headers.get("content-type", "application/octet-stream")
    if_match = r.headers.get("x-oss-copy-source-if-match")

    def check(meta: ObjectMeta) -> None:
        if if_match is not None and if_match.strip() != meta.etag:
            raise OssError(
                412,
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold.",
            )

    h.discard_body()
    meta = h.server.state.store.copy(
        source, r.bucket, r.object_key, content_type, check, forbid_overwrite(r.headers)
    )
    out = {**_written_headers(meta), "Content-Type": "application/xml"}
    del out["ETag"]  # OSS gives the ETag in the document only
    h.send_bytes(200, out, copy_object_xml(meta.etag, meta.last_modified), fault)


def delete_object(h: OssRequestHandler, r: DataRequest, fault: Fault) -> None:
    h.discard_body()
    h.server.state.store.delete(r.bucket, r.object_key)  # 204 for a missing key too
    h.send_bytes(204, {}, b"", fault)
