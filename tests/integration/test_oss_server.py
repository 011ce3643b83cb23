"""The OSS test server itself: it must accept what the official SDKs send and refuse what real
OSS refuses. Client tests against it only mean something if these pass — a server that
accepted any signature would make every client test green."""

from __future__ import annotations

import base64
import datetime
import http.client
import json
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

import alibabacloud_oss_v2 as oss  # type: ignore[import-untyped]
import pytest
from alibabacloud_oss_v2.crc import Crc64 as SdkCrc64  # type: ignore[import-untyped]
from alibabacloud_oss_v2.signer.v4 import SignerV4  # type: ignore[import-untyped]
from alibabacloud_oss_v2.types import (  # type: ignore[import-untyped]
    Credentials,
    HttpRequest,
    SigningContext,
)

from oss_server import crc64, crc64_update_pure, generated_bytes, iter_generated
from oss_server.errors import OssError
from oss_server.signature import AccessKey, KeyTable, ReceivedRequest, Verifier

if TYPE_CHECKING:
    from conftest import OssServer

pytestmark = pytest.mark.oss_server

WEIRD_KEYS = [
    "a b/c+d%e=f&g~h;i/日本.txt",
    "a",
    "a/b",
    "a/",
    "deep/er/and/deeper/x y z",
    "plus+and space",
    "semi;colon,comma'quote\"",
]


def sdk_crc64(data: bytes) -> int:
    """The official SDK's CRC-64 (what it verifies downloads with): the independent oracle."""
    crc = SdkCrc64(0)
    crc.update(data)
    return int(crc.hexdigest(), 16)


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def error_code(self) -> str:
        root = ET.fromstring(self.body)
        assert root.tag == "Error", self.body
        code = root.findtext("Code")
        assert code is not None
        return code


def raw_request(
    server: OssServer,
    method: str,
    bucket: str | None,
    key: str | None = None,
    *,
    query: Iterable[tuple[str, str]] = (),
    sent_query: str | None = None,
    signed_query: str | None = None,
    headers: dict[str, str] | None = None,
    send_headers: dict[str, str] | None = None,
    access_key_id: str | None = None,
    secret: str | None = None,
    token: str | None = None,
    region: str | None = None,
    signing_time: datetime.datetime | None = None,
    additional_headers: set[str] | None = None,
    sign: bool = True,
    body: bytes | None = None,
    conn: http.client.HTTPConnection | None = None,
) -> Response:
    """Send one request signed by the SDK's SignerV4 with inputs the test controls.

    `query` is strictly encoded on the wire; `sent_query` / `signed_query` replace what is sent
    or what the signer sees, to model clients that canonicalise differently from what they send.
    `send_headers` are added (or replace) after signing, to model tampering.
    """
    path = "/"
    if bucket is not None:
        path += bucket + "/" + (quote(key) if key is not None else "")
    strict = "&".join(
        f"{quote(k, safe='')}={quote(v, safe='')}" if v else quote(k, safe="") for k, v in query
    )
    wire_query = strict if sent_query is None else sent_query
    sig_query = wire_query if signed_query is None else signed_query
    host = f"127.0.0.1:{server.port}"
    req = HttpRequest(
        method,
        f"http://{host}{path}" + (f"?{sig_query}" if sig_query else ""),
        headers={"Host": host, **(headers or {})},
    )
    if sign:
        ctx = SigningContext(
            product="oss",
            region=region or server.region,
            bucket=bucket,
            key=key,
            request=req,
            credentials=Credentials(
                access_key_id or server.access_key_id, secret or server.access_key_secret, token
            ),
            signing_time=signing_time,
            additional_headers=additional_headers,
        )
        SignerV4().sign(ctx)
    out_headers = {**dict(req.headers.items()), **(send_headers or {})}
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        target = path + (f"?{wire_query}" if wire_query else "")
        conn.request(method, target, body=body, headers=out_headers)
        resp = conn.getresponse()
        return Response(resp.status, resp.headers, resp.read())
    finally:
        if own:
            conn.close()


def assert_refused(resp: Response, code: str) -> None:
    assert resp.status == 403, (resp.status, resp.body)
    assert resp.error_code() == code, resp.body


# -- the official SDK is accepted ------------------------------------------------------------


def test_sdk_put_get_head(oss_server: OssServer, bucket: str) -> None:
    client = oss_server.sdk_client()
    data = bytes(range(256)) * 41
    put = client.put_object(oss.PutObjectRequest(bucket=bucket, key="dir/obj.bin", body=data))
    assert put.status_code == 200
    assert put.hash_crc64 == str(sdk_crc64(data))

    got = client.get_object(oss.GetObjectRequest(bucket=bucket, key="dir/obj.bin"))
    assert got.status_code == 200
    assert got.body.read() == data
    assert got.content_length == len(data)
    assert got.hash_crc64 == str(sdk_crc64(data))
    assert got.etag == put.etag
    assert got.headers["Content-Type"] == "application/octet-stream"
    assert got.headers["Last-Modified"].endswith(" GMT")

    head = client.head_object(oss.HeadObjectRequest(bucket=bucket, key="dir/obj.bin"))
    assert head.content_length == len(data)
    assert head.hash_crc64 == got.hash_crc64
    assert head.etag == put.etag


def test_sdk_range_get(oss_server: OssServer, bucket: str) -> None:
    data = bytes(range(100))
    oss_server.put(bucket, "r", data)
    client = oss_server.sdk_client()
    for header, start, end in [
        ("bytes=10-19", 10, 19),
        ("bytes=90-", 90, 99),
        ("bytes=-5", 95, 99),
    ]:
        got = client.get_object(oss.GetObjectRequest(bucket=bucket, key="r", range_header=header))
        assert got.status_code == 206
        assert got.content_range == f"bytes {start}-{end}/100"
        assert got.body.read() == data[start : end + 1]
        # As on OSS, a ranged answer states the whole object's CRC-64.
        assert got.headers["x-oss-hash-crc64ecma"] == str(crc64(data))


def _list_all(client: oss.Client, bucket: str, **kwargs: object) -> list[oss.ListObjectsV2Result]:
    pages = []
    token = None
    while True:
        page = client.list_objects_v2(
            oss.ListObjectsV2Request(bucket=bucket, continuation_token=token, **kwargs)
        )
        pages.append(page)
        if not page.is_truncated:
            return pages
        token = page.next_continuation_token
        assert token


def test_sdk_list_paginates(oss_server: OssServer, bucket: str) -> None:
    keys = [f"p/{i}" for i in range(5)]
    for key in reversed(keys):
        oss_server.put(bucket, key, key.encode())
    oss_server.put(bucket, "other", b"x")
    pages = _list_all(oss_server.sdk_client(), bucket, prefix="p/", max_keys=2)
    assert [[o.key for o in p.contents or []] for p in pages] == [keys[0:2], keys[2:4], keys[4:]]
    assert [p.key_count for p in pages] == [2, 2, 1]
    assert [p.is_truncated for p in pages] == [True, True, False]
    first = pages[0].contents[0]
    assert first.size == 3 and first.etag and first.etag.startswith('"')
    assert first.storage_class == "Standard" and first.object_type == "Normal"


def test_sdk_list_weird_keys_url_encoded(oss_server: OssServer, bucket: str) -> None:
    for key in WEIRD_KEYS:
        oss_server.put(bucket, key, key.encode())
    client = oss_server.sdk_client()
    listed = [o.key for p in _list_all(client, bucket, max_keys=2) for o in p.contents or []]
    # OSS orders keys by their UTF-8 bytes.
    assert listed == sorted(WEIRD_KEYS, key=lambda k: k.encode())
    for key in WEIRD_KEYS:
        got = client.get_object(oss.GetObjectRequest(bucket=bucket, key=key))
        assert got.body.read() == key.encode()

    pages = _list_all(client, bucket, prefix="a", delimiter="/", max_keys=1)
    keys = [o.key for p in pages for o in p.contents or []]
    prefixes = [c.prefix for p in pages for c in p.common_prefixes or []]
    assert keys == ["a"]
    assert prefixes == ["a b/", "a/"]  # `a/` and `a/b` roll up into one prefix, listed once

    # The wire form is encoded so that a strict decoder gets the key back byte for byte.
    resp = raw_request(
        oss_server, "GET", bucket, query=[("list-type", "2"), ("encoding-type", "url")]
    )
    root = ET.fromstring(resp.body)
    assert root.findtext("EncodingType") == "url"
    wire_keys = [el.text or "" for el in root.iter("Key")]
    assert "a%20b%2Fc%2Bd%25e%3Df%26g~h%3Bi%2F%E6%97%A5%E6%9C%AC.txt" in wire_keys
    assert sorted(unquote(k) for k in wire_keys) == sorted(WEIRD_KEYS)


def test_list_xml_shape(oss_server: OssServer, bucket: str) -> None:
    oss_server.put(bucket, "x/1", b"1")
    oss_server.put(bucket, "x/2", b"22")
    resp = raw_request(
        oss_server,
        "GET",
        bucket,
        query=[("list-type", "2"), ("prefix", "x/"), ("max-keys", "1")],
    )
    assert resp.status == 200
    assert b"xmlns" not in resp.body
    root = ET.fromstring(resp.body)
    assert root.tag == "ListBucketResult"
    fields = {c.tag: c.text for c in root if c.tag != "Contents"}
    assert fields["Name"] == bucket
    assert fields["Prefix"] == "x/"
    assert fields["MaxKeys"] == "1"
    assert fields["KeyCount"] == "1"
    assert fields["IsTruncated"] == "true"
    token = fields["NextContinuationToken"]
    assert token
    contents = root.find("Contents")
    assert contents is not None
    assert [c.tag for c in contents] == [
        "Key",
        "LastModified",
        "ETag",
        "Type",
        "Size",
        "StorageClass",
    ]
    last_modified = contents.findtext("LastModified") or ""
    assert last_modified.endswith(".000Z") and "T" in last_modified

    resp = raw_request(
        oss_server,
        "GET",
        bucket,
        query=[("list-type", "2"), ("prefix", "x/"), ("continuation-token", token)],
    )
    root = ET.fromstring(resp.body)
    assert root.findtext("ContinuationToken") == token
    assert [k.text for k in root.iter("Key")] == ["x/2"]
    assert root.find("NextContinuationToken") is None


def test_list_errors(oss_server: OssServer, bucket: str) -> None:
    resp = raw_request(oss_server, "GET", bucket, query=[("list-type", "2"), ("max-keys", "1001")])
    assert resp.status == 400 and resp.error_code() == "InvalidArgument"
    resp = raw_request(oss_server, "GET", bucket, query=[("list-type", "2")])
    assert resp.status == 200 and ET.fromstring(resp.body).findtext("KeyCount") == "0"


def test_sdk_with_security_token(oss_server: OssServer, bucket: str) -> None:
    oss_server.put(bucket, "k", b"token data")
    oss_server.control_keys(add=[{"id": "STS.tokenkey", "secret": "sts-secret", "token": "tok+/="}])
    try:
        client = oss_server.sdk_client("STS.tokenkey", "sts-secret", "tok+/=")
        got = client.get_object(oss.GetObjectRequest(bucket=bucket, key="k"))
        assert got.body.read() == b"token data"

        no_token = raw_request(
            oss_server, "GET", bucket, "k", access_key_id="STS.tokenkey", secret="sts-secret"
        )
        assert_refused(no_token, "InvalidSecurityToken")
        wrong_token = raw_request(
            oss_server,
            "GET",
            bucket,
            "k",
            access_key_id="STS.tokenkey",
            secret="sts-secret",
            token="other",
        )
        assert_refused(wrong_token, "InvalidSecurityToken")

        oss_server.control_keys(expire=["STS.tokenkey"])
        expired = raw_request(
            oss_server,
            "GET",
            bucket,
            "k",
            access_key_id="STS.tokenkey",
            secret="sts-secret",
            token="tok+/=",
        )
        assert_refused(expired, "SecurityTokenExpired")
    finally:
        oss_server.control_keys(remove=["STS.tokenkey"])
    gone = raw_request(
        oss_server, "GET", bucket, "k", access_key_id="STS.tokenkey", secret="sts-secret"
    )
    assert_refused(gone, "InvalidAccessKeyId")


def test_oss2_v4_get(oss_server: OssServer, bucket: str) -> None:
    """oss2 signs V4 independently of the v2 SDK (and formats Authorization differently)."""
    oss2 = pytest.importorskip("oss2")
    oss_server.put(bucket, "dir/x y+z.bin", b"via oss2")
    auth = oss2.AuthV4(oss_server.access_key_id, oss_server.access_key_secret)
    b = oss2.Bucket(auth, oss_server.endpoint, bucket, region=oss_server.region)
    assert b.get_object("dir/x y+z.bin").read() == b"via oss2"
    assert b.get_object("dir/x y+z.bin", byte_range=(1, 3)).read() == b"ia "
    assert [o.key for o in oss2.ObjectIteratorV2(b, prefix="dir/")] == ["dir/x y+z.bin"]


@pytest.mark.parametrize(
    ("unix_time", "token", "additional", "signature"),
    [
        (1702743657, None, "", "e21d18daa82167720f9b1047ae7e7f1ce7cb77a31e8203a7d5f4624fa0284afe"),
        (
            1702784856,
            "token",
            "",
            "b94a3f999cf85bcdc00d332fbd3734ba03e48382c36fa4d5af5df817395bd9ea",
        ),
        (
            1702747512,
            None,
            "abc;zabc",
            "4a4183c187c07c8947db7620deb0a6b38d9fbdd34187b6dbaccb316fa251212f",
        ),
    ],
)
def test_verifier_accepts_official_known_answers(
    unix_time: int, token: str | None, additional: str, signature: str
) -> None:
    """The server's own request decoding feeds the signer the inputs the SDK vectors used.

    Vectors from the official SDKs' unit tests: query names and values arrive decoded, as the
    server's parser produces them, and must be re-encoded strictly (`+param1` → `%2Bparam1`).
    """
    date = datetime.datetime.fromtimestamp(unix_time, datetime.UTC)
    headers = [
        ("x-oss-head1", "value"),
        ("abc", "value"),
        ("ZAbc", "value"),
        ("XYZ", "value"),
        ("content-type", "text/plain"),
        ("x-oss-content-sha256", "UNSIGNED-PAYLOAD"),
        ("x-oss-date", date.strftime("%Y%m%dT%H%M%SZ")),
    ]
    if token:
        headers.append(("x-oss-security-token", token))
    scope = f"ak/{date:%Y%m%d}/cn-hangzhou/oss/aliyun_v4_request"
    extra = f",AdditionalHeaders={additional}" if additional else ""
    headers.append(("Authorization", f"OSS4-HMAC-SHA256 Credential={scope}{extra},Signature="))
    query = [
        ("param1", "value1"),
        ("+param1", "value3"),
        ("|param1", "value4"),
        ("+param2", ""),
        ("|param2", ""),
        ("param2", ""),
    ]
    verifier = Verifier("cn-hangzhou", KeyTable([AccessKey("ak", "sk", token)]), lambda: unix_time)

    def verify(sig: str) -> None:
        signed = [(n, v + sig if n == "Authorization" else v) for n, v in headers]
        verifier.verify(ReceivedRequest("PUT", "bucket", "1234+-/123/1.txt", query, signed))

    verify(signature)
    with pytest.raises(OssError) as info:
        verify(signature[:-1] + ("0" if signature[-1] != "0" else "1"))
    assert info.value.code == "SignatureDoesNotMatch"


# -- refusals: the check is real -------------------------------------------------------------


def test_raw_signed_request_is_accepted(oss_server: OssServer, bucket: str) -> None:
    """Control for the refusal tests: the same helper, signing correctly, gets 200."""
    oss_server.put(bucket, "a/b/c", b"abc")
    assert raw_request(oss_server, "GET", bucket, "a/b/c").body == b"abc"
    listed = raw_request(oss_server, "GET", bucket, query=[("list-type", "2"), ("prefix", "a/b")])
    assert listed.status == 200, listed.body
    assert b"<Key>a/b/c</Key>" in listed.body
    signed_host = raw_request(oss_server, "GET", bucket, "a/b/c", additional_headers={"host"})
    assert signed_host.status == 200, signed_host.body


def test_refuses_unsigned(oss_server: OssServer, bucket: str) -> None:
    oss_server.put(bucket, "k", b"v")
    assert_refused(raw_request(oss_server, "GET", bucket, "k", sign=False), "AccessDenied")
    garbage = raw_request(
        oss_server, "GET", bucket, "k", sign=False, send_headers={"Authorization": "OSS4 nope"}
    )
    assert_refused(garbage, "AccessDenied")


def test_refuses_wrong_secret(oss_server: OssServer, bucket: str) -> None:
    oss_server.put(bucket, "k", b"v")
    resp = raw_request(oss_server, "GET", bucket, "k", secret="not-the-secret")
    assert_refused(resp, "SignatureDoesNotMatch")
    root = ET.fromstring(resp.body)
    assert (root.findtext("CanonicalRequest") or "").startswith(f"GET\n/{bucket}/k\n")


def test_refuses_unknown_key_id(oss_server: OssServer, bucket: str) -> None:
    resp = raw_request(oss_server, "GET", bucket, "k", access_key_id="LTAInobody")
    assert_refused(resp, "InvalidAccessKeyId")


def test_refuses_wrong_region(oss_server: OssServer, bucket: str) -> None:
    oss_server.put(bucket, "k", b"v")
    assert_refused(
        raw_request(oss_server, "GET", bucket, "k", region="cn-beijing"), "SignatureDoesNotMatch"
    )


def test_refuses_query_signed_without_strict_encoding(oss_server: OssServer, bucket: str) -> None:
    oss_server.put(bucket, "a/b/c", b"abc")
    # The client signs `prefix=a/b` as it sends it; OSS canonicalises it to `prefix=a%2Fb`.
    lax = raw_request(oss_server, "GET", bucket, sent_query="list-type=2&prefix=a/b")
    assert_refused(lax, "SignatureDoesNotMatch")
    # Same with a space sent as %20 but signed as `+`.
    plus = raw_request(
        oss_server,
        "GET",
        bucket,
        sent_query="list-type=2&prefix=a%20b",
        signed_query="list-type=2&prefix=a+b",
    )
    assert_refused(plus, "SignatureDoesNotMatch")


def test_refuses_skewed_time(oss_server: OssServer, bucket: str) -> None:
    oss_server.put(bucket, "k", b"v")
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=20)
    resp = raw_request(oss_server, "GET", bucket, "k", signing_time=past)
    assert_refused(resp, "RequestTimeTooSkewed")
    assert ET.fromstring(resp.body).findtext("ServerTime")
    recent = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    assert raw_request(oss_server, "GET", bucket, "k", signing_time=recent).status == 200


def test_refuses_scope_date_mismatch(oss_server: OssServer, bucket: str) -> None:
    oss_server.put(bucket, "k", b"v")
    now = datetime.datetime.now(datetime.UTC)
    yesterday = now - datetime.timedelta(days=1)
    resp = raw_request(
        oss_server,
        "GET",
        bucket,
        "k",
        signing_time=yesterday,
        send_headers={"x-oss-date": now.strftime("%Y%m%dT%H%M%SZ")},
    )
    assert_refused(resp, "SignatureDoesNotMatch")
    assert "signing date" in (ET.fromstring(resp.body).findtext("Message") or "")


def test_refuses_tampered_signed_headers(oss_server: OssServer, bucket: str) -> None:
    oss_server.put(bucket, "k", b"v")
    meta = raw_request(
        oss_server,
        "GET",
        bucket,
        "k",
        headers={"x-oss-meta-a": "1"},
        send_headers={"x-oss-meta-a": "2"},
    )
    assert_refused(meta, "SignatureDoesNotMatch")
    host = raw_request(
        oss_server,
        "GET",
        bucket,
        "k",
        additional_headers={"host"},
        send_headers={"Host": "elsewhere.example"},
    )
    assert_refused(host, "SignatureDoesNotMatch")
    payload = raw_request(
        oss_server, "GET", bucket, "k", send_headers={"x-oss-content-sha256": "0" * 64}
    )
    assert_refused(payload, "SignatureDoesNotMatch")


# -- errors, ranges, CRC ---------------------------------------------------------------------


def _assert_error_shape(resp: Response, status: int, code: str) -> None:
    assert resp.status == status
    assert resp.headers["Content-Type"] == "application/xml"
    assert int(resp.headers["Content-Length"]) == len(resp.body)
    assert resp.body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(resp.body)
    assert root.tag == "Error"
    assert [c.tag for c in root][:4] == ["Code", "Message", "RequestId", "HostId"]
    assert root.findtext("Code") == code
    assert root.findtext("RequestId") == resp.headers["x-oss-request-id"]
    assert len(resp.headers["x-oss-request-id"]) == 24
    assert root.findtext("EC") == resp.headers["x-oss-ec"]


def test_not_found_errors(oss_server: OssServer, bucket: str) -> None:
    _assert_error_shape(raw_request(oss_server, "GET", bucket, "missing"), 404, "NoSuchKey")
    other = raw_request(oss_server, "GET", "no-such-bucket-here", "k")
    _assert_error_shape(other, 404, "NoSuchBucket")
    listing = raw_request(oss_server, "GET", "no-such-bucket-here", query=[("list-type", "2")])
    _assert_error_shape(listing, 404, "NoSuchBucket")


def test_head_error_in_header(oss_server: OssServer, bucket: str) -> None:
    resp = raw_request(oss_server, "HEAD", bucket, "missing")
    assert resp.status == 404
    assert resp.body == b""
    doc = ET.fromstring(base64.b64decode(resp.headers["x-oss-err"]))
    assert doc.findtext("Code") == "NoSuchKey"
    assert doc.findtext("RequestId") == resp.headers["x-oss-request-id"]
    with pytest.raises(oss.exceptions.OperationError) as info:
        oss_server.sdk_client().head_object(oss.HeadObjectRequest(bucket=bucket, key="missing"))
    assert "NoSuchKey" in str(info.value)


@pytest.mark.parametrize(
    ("range_header", "standard", "status", "span"),
    [
        ("bytes=0-9", False, 206, (0, 9)),
        ("bytes=0-9", True, 206, (0, 9)),
        ("bytes=95-", False, 206, (95, 99)),
        ("bytes=-10", False, 206, (90, 99)),
        # Default OSS behaviour: a range it cannot serve exactly is ignored (whole object, 200).
        ("bytes=90-200", False, 200, None),
        ("bytes=100-200", False, 200, None),
        ("bytes=-200", False, 200, None),
        ("bytes=9-3", False, 200, None),
        ("byte=0-9", False, 200, None),
        # x-oss-range-behavior: standard is RFC 7233.
        ("bytes=90-200", True, 206, (90, 99)),
        ("bytes=-200", True, 206, (0, 99)),
        ("bytes=100-200", True, 416, None),
        ("bytes=100-", True, 416, None),
    ],
)
def test_range_semantics(
    oss_server: OssServer,
    range_header: str,
    standard: bool,
    status: int,
    span: tuple[int, int] | None,
) -> None:
    bucket = "range-semantics"
    data = bytes(range(100))
    oss_server.put(bucket, "obj", data)
    # x-oss-range-behavior is signed (all x-oss-* are); Range is not, so it may be set after.
    signed = {"x-oss-range-behavior": "standard"} if standard else {}
    resp = raw_request(
        oss_server, "GET", bucket, "obj", headers=signed, send_headers={"Range": range_header}
    )
    assert resp.status == status, resp.body
    if status == 416:
        assert resp.error_code() == "InvalidRange"
        assert resp.headers["Content-Range"] == "bytes */100"
    elif span is None:
        assert resp.body == data
        assert "Content-Range" not in resp.headers
        assert resp.headers["x-oss-hash-crc64ecma"] == str(sdk_crc64(data))
    else:
        assert resp.body == data[span[0] : span[1] + 1]
        assert resp.headers["Content-Range"] == f"bytes {span[0]}-{span[1]}/100"


def test_crc64_implementations() -> None:
    assert crc64(b"123456789") == 0x995DC9BBDF1939FA
    assert crc64_update_pure(0, b"123456789") == 0x995DC9BBDF1939FA
    data = bytes(range(256)) * 3 + b"tail"
    assert crc64(data) == sdk_crc64(data) == crc64_update_pure(0, data)
    assert crc64_update_pure(crc64(data[:100]), data[100:]) == crc64(data)


def test_generate_and_crc(oss_server: OssServer, bucket: str) -> None:
    size = 3 * (1 << 20) + 12345
    info = oss_server.generate(bucket, "gen/big.bin", size, seed=42)
    expected = b"".join(iter_generated(42, size))
    assert info["size"] == size
    assert info["crc64"] == str(sdk_crc64(expected))
    assert generated_bytes(42, 0, 1 << 20) != generated_bytes(42, 1 << 20, 2 << 20)

    got = raw_request(oss_server, "GET", bucket, "gen/big.bin")
    assert got.status == 200
    assert got.body == expected
    assert got.headers["x-oss-hash-crc64ecma"] == str(sdk_crc64(expected))
    start, end = (1 << 20) - 7, 2 * (1 << 20) + 99
    part = raw_request(
        oss_server, "GET", bucket, "gen/big.bin", send_headers={"Range": f"bytes={start}-{end}"}
    )
    assert part.status == 206
    assert part.body == generated_bytes(42, start, end + 1)


# -- protocol plumbing -------------------------------------------------------------------------


def test_keep_alive_survives_errors(oss_server: OssServer, bucket: str) -> None:
    oss_server.put(bucket, "k", b"value")
    conn = http.client.HTTPConnection("127.0.0.1", oss_server.port, timeout=30)
    try:
        assert raw_request(oss_server, "GET", bucket, "nope", conn=conn).status == 404
        assert raw_request(oss_server, "HEAD", bucket, "nope", conn=conn).status == 404
        assert raw_request(oss_server, "GET", bucket, "k", sign=False, conn=conn).status == 403
        assert raw_request(oss_server, "GET", bucket, "k", conn=conn).body == b"value"
        put = raw_request(oss_server, "PUT", bucket, "k2", body=b"0123456789", conn=conn)
        assert put.status == 200, put.body
        assert raw_request(oss_server, "GET", bucket, "k2", conn=conn).body == b"0123456789"
    finally:
        conn.close()


def test_chunked_put(oss_server: OssServer, bucket: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", oss_server.port, timeout=30)
    try:
        host = f"127.0.0.1:{oss_server.port}"
        req = HttpRequest("PUT", f"http://{host}/{bucket}/chunked", headers={"Host": host})
        ctx = SigningContext(
            product="oss",
            region=oss_server.region,
            bucket=bucket,
            key="chunked",
            request=req,
            credentials=Credentials(oss_server.access_key_id, oss_server.access_key_secret),
        )
        SignerV4().sign(ctx)
        conn.request(
            "PUT",
            f"/{bucket}/chunked",
            body=iter([b"abc", b"defg", b"h"]),
            headers=dict(req.headers.items()),
            encode_chunked=True,
        )
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200
    finally:
        conn.close()
    assert raw_request(oss_server, "GET", bucket, "chunked").body == b"abcdefgh"


def test_virtual_hosted_style(oss_server: OssServer, bucket: str) -> None:
    oss_server.put(bucket, "v/k", b"vhost")
    conn = http.client.HTTPConnection("127.0.0.1", oss_server.port, timeout=30)
    try:
        host = f"{bucket}.localhost:{oss_server.port}"
        req = HttpRequest("GET", f"http://{host}/v/k", headers={"Host": host})
        ctx = SigningContext(
            product="oss",
            region=oss_server.region,
            bucket=bucket,
            key="v/k",
            request=req,
            credentials=Credentials(oss_server.access_key_id, oss_server.access_key_secret),
        )
        SignerV4().sign(ctx)
        conn.request("GET", "/v/k", headers=dict(req.headers.items()))
        resp = conn.getresponse()
        assert (resp.status, resp.read()) == (200, b"vhost")
    finally:
        conn.close()


def test_concurrent_keep_alive_connections(oss_server: OssServer, bucket: str) -> None:
    oss_server.put(bucket, "c", b"x" * 1000)
    workers, per_worker = 32, 4
    errors: list[str] = []
    barrier = threading.Barrier(workers)

    def work() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", oss_server.port, timeout=30)
        try:
            barrier.wait()
            for _ in range(per_worker):
                resp = raw_request(oss_server, "GET", bucket, "c", conn=conn)
                if resp.status != 200 or len(resp.body) != 1000:
                    errors.append(f"{resp.status} {resp.body[:200]!r}")
        except Exception as e:  # reported below, with the others
            errors.append(repr(e))
        finally:
            conn.close()

    oss_server.control("POST", "delay", {"delay_ms": 100})
    before = oss_server.reset_stats()
    try:
        threads = [threading.Thread(target=work) for _ in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        oss_server.control("POST", "delay", {"delay_ms": 0})
    after = oss_server.stats()
    assert not errors, errors[:5]
    assert before["requests"] == 0
    assert after["requests_by_method"]["GET"] == workers * per_worker
    # The first-byte delay keeps requests overlapping: most workers must be in flight at once.
    assert after["max_in_flight"] >= workers // 2
    assert after["connections_total"] >= workers
    assert after["responses_by_status"]["200"] == workers * per_worker


def test_control_endpoints(oss_server: OssServer) -> None:
    keys = oss_server.control("GET", "keys")["keys"]
    assert {"id": oss_server.access_key_id, "has_token": False, "expired": False} in keys
    assert oss_server.access_key_secret not in json.dumps(keys)
    stats = oss_server.stats()
    for field in ("requests_by_method", "max_in_flight", "in_flight", "bytes_sent"):
        assert field in stats
    assert oss_server.control("GET", "health") == {"ok": True}


def test_control_clock_skew(oss_server: OssServer, bucket: str) -> None:
    oss_server.put(bucket, "k", b"v")
    oss_server.control("POST", "clock", {"offset_s": 3600})
    try:
        resp = raw_request(oss_server, "GET", bucket, "k")
        assert_refused(resp, "RequestTimeTooSkewed")
        server_time = ET.fromstring(resp.body).findtext("ServerTime") or ""
        skewed = datetime.datetime.strptime(server_time, "%Y-%m-%dT%H:%M:%SZ")
        now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        assert abs((skewed - now).total_seconds() - 3600) < 60
    finally:
        oss_server.control("POST", "clock", {"offset_s": 0})
    assert raw_request(oss_server, "GET", bucket, "k").status == 200
