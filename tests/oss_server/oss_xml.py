"""XML bodies in OSS's dialect: no namespace, `<?xml ...?>` prologue, fixed element order."""

from __future__ import annotations

import datetime
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
