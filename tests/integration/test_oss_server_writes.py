"""The OSS test server's write side: PutObject, multipart uploads, CopyObject, DeleteObject,
HeadObject, each as real OSS answers it, each behind the same signature check as reads, and
each reachable by the fault plan.

Happy paths go through the official SDK (`alibabacloud_oss_v2`) only; requests the SDK cannot
produce (a tampered query, no signature, a raw socket kept sending) are signed by the SDK's
own SignerV4. The module runs its own server so fault plans never leak into other tests.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import re
import socket
import threading
import time
import urllib.error
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import alibabacloud_oss_v2 as oss  # type: ignore[import-untyped]
import pytest
from alibabacloud_oss_v2.crc import Crc64 as SdkCrc64  # type: ignore[import-untyped]
from alibabacloud_oss_v2.signer.v4 import SignerV4  # type: ignore[import-untyped]
from alibabacloud_oss_v2.types import (  # type: ignore[import-untyped]
    Credentials,
    HttpRequest,
    SigningContext,
)

from conftest import OssServer, start_oss_server, stop_oss_server
from oss_server import crc64, crc64_combine
from oss_server.multipart import Uploads
from oss_server.store import Store

pytestmark = pytest.mark.oss_server

KIB = 1024
PART = 100 * KIB  # the smallest part OSS accepts before the last one


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OssServer]:
    srv = start_oss_server(tmp_path_factory.mktemp("writes") / "root")
    try:
        yield srv
    finally:
        stop_oss_server(srv)


@pytest.fixture(autouse=True)
def fresh(server: OssServer) -> Iterator[None]:
    server.clear_faults()
    server.reset_stats()
    yield
    server.clear_faults()


@pytest.fixture
def bucket(server: OssServer) -> str:
    name = f"w-{uuid.uuid4().hex[:16]}"
    server.sdk_client().put_bucket(oss.PutBucketRequest(bucket=name))
    return name


def sdk_crc64(data: bytes) -> int:
    crc = SdkCrc64(0)
    crc.update(data)
    return int(crc.hexdigest(), 16)


def once_client(server: OssServer) -> oss.Client:
    """An official-SDK client that makes one attempt per call, so every fault shows."""
    cfg = oss.config.load_default()
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(
        server.access_key_id, server.access_key_secret
    )
    cfg.region = server.region
    cfg.endpoint = server.endpoint
    cfg.use_path_style = True
    cfg.retry_max_attempts = 1
    return oss.Client(cfg)


def service_error(info: pytest.ExceptionInfo[Any]) -> tuple[int, str]:
    err = info.value.unwrap()
    return err.status_code, err.code


def stats(server: OssServer) -> dict[str, Any]:
    return server.settled_stats(2)


def stats_when(server: OssServer, ready: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The stats once `ready` holds of them (the server counts a request when it is done with
    it, which a client that got its answer, or a reset, may see first); waits up to 5 s."""
    deadline = time.monotonic() + 5
    while True:
        current = stats(server)
        if ready(current) or time.monotonic() > deadline:
            return current
        time.sleep(0.01)


def op_statuses(server: OssServer, operation: str, answers: int) -> dict[str, int]:
    """Statuses of `operation`'s answers once `answers` are counted: the server counts an
    answer after sending it, so the client may see it first (waits up to 5 s)."""
    deadline = time.monotonic() + 5
    while True:
        counts: dict[str, Any] = stats(server)["operations"].get(operation, {})
        statuses = dict(counts.get("responses_by_status", {}))
        if sum(statuses.values()) >= answers or time.monotonic() > deadline:
            return statuses
        time.sleep(0.01)


# -- SDK shorthands ---------------------------------------------------------------------------


def initiate(client: oss.Client, bucket: str, key: str) -> str:
    result = client.initiate_multipart_upload(
        oss.InitiateMultipartUploadRequest(bucket=bucket, key=key)
    )
    assert result.status_code == 200 and result.bucket == bucket and result.key == key
    upload_id: str = result.upload_id
    return upload_id


def upload_part(
    client: oss.Client, bucket: str, key: str, upload_id: str, number: int, data: bytes, **kw: Any
) -> oss.UploadPartResult:
    return client.upload_part(
        oss.UploadPartRequest(
            bucket=bucket, key=key, upload_id=upload_id, part_number=number, body=data, **kw
        )
    )


def complete(
    client: oss.Client, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]]
) -> oss.CompleteMultipartUploadResult:
    listed = [oss.UploadPart(part_number=n, etag=etag) for n, etag in parts]
    return client.complete_multipart_upload(
        oss.CompleteMultipartUploadRequest(
            bucket=bucket,
            key=key,
            upload_id=upload_id,
            complete_multipart_upload=oss.CompleteMultipartUpload(parts=listed),
        )
    )


def pending(client: oss.Client, bucket: str, prefix: str = "") -> list[tuple[str, str]]:
    """(key, UploadId) of every upload in progress, through ListMultipartUploads pages."""
    out: list[tuple[str, str]] = []
    key_marker, id_marker = "", ""
    while True:
        page = client.list_multipart_uploads(
            oss.ListMultipartUploadsRequest(
                bucket=bucket,
                prefix=prefix or None,
                key_marker=key_marker or None,
                upload_id_marker=id_marker or None,
                max_uploads=2,
            )
        )
        out += [(u.key, u.upload_id) for u in page.uploads or []]
        if not page.is_truncated:
            return out
        key_marker, id_marker = page.next_key_marker, page.next_upload_id_marker


def get(client: oss.Client, bucket: str, key: str) -> bytes:
    data: bytes = client.get_object(oss.GetObjectRequest(bucket=bucket, key=key)).body.read()
    return data


# -- requests the SDK cannot make, signed by its SignerV4 -------------------------------------


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def code(self) -> str:
        if not self.body:  # HEAD: the error document is in x-oss-err
            return ET.fromstring(base64.b64decode(self.headers["x-oss-err"])).findtext("Code") or ""
        return ET.fromstring(self.body).findtext("Code") or ""


def signed_request(
    server: OssServer,
    method: str,
    bucket: str,
    key: str | None,
    query: list[tuple[str, str]] = [],  # noqa: B006 - never mutated
    *,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    secret: str | None = None,
    signed_query: list[tuple[str, str]] | None = None,
    sign: bool = True,
) -> tuple[str, dict[str, str]]:
    """(target, headers) of a request signed by SignerV4 over `signed_query` (default: the
    query sent); names and values are strictly encoded, empty values as bare names."""

    def encode(pairs: list[tuple[str, str]]) -> str:
        return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" if v else k for k, v in pairs)

    host = f"127.0.0.1:{server.port}"
    path = f"/{bucket}/" + (quote(key) if key is not None else "")
    sent, to_sign = encode(query), encode(query if signed_query is None else signed_query)
    req = HttpRequest(
        method,
        f"http://{host}{path}" + (f"?{to_sign}" if to_sign else ""),
        headers={"Host": host, "Content-Length": str(len(body)), **(headers or {})},
    )
    if sign:
        ctx = SigningContext(
            product="oss",
            region=server.region,
            bucket=bucket,
            key=key,
            request=req,
            credentials=Credentials(server.access_key_id, secret or server.access_key_secret),
        )
        SignerV4().sign(ctx)
    return path + (f"?{sent}" if sent else ""), dict(req.headers.items())


def send(
    server: OssServer, method: str, bucket: str, key: str | None, *args: Any, **kw: Any
) -> Answer:
    target, headers = signed_request(server, method, bucket, key, *args, **kw)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request(method, target, body=kw.get("body", b""), headers=headers)
        resp = conn.getresponse()
        return Answer(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


def complete_body(parts: list[tuple[int, str]]) -> bytes:
    items = "".join(
        f"<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>" for n, etag in parts
    )
    return f"<CompleteMultipartUpload>{items}</CompleteMultipartUpload>".encode()


# -- multipart uploads ------------------------------------------------------------------------


def test_multipart_upload_round_trip(server: OssServer, bucket: str) -> None:
    client = server.sdk_client()
    key = "dir/a b+c=d.bin"
    data = [os.urandom(PART), os.urandom(PART), os.urandom(1234)]
    upload_id = initiate(client, bucket, key)
    assert re.fullmatch(r"[0-9A-F]{32}", upload_id)
    assert pending(client, bucket) == [(key, upload_id)]

    etags = []
    for number, chunk in enumerate(data, 1):
        part = upload_part(client, bucket, key, upload_id, number, chunk)
        assert part.status_code == 200
        assert part.etag == f'"{hashlib.md5(chunk).hexdigest().upper()}"'
        assert part.hash_crc64 == str(sdk_crc64(chunk))  # the SDK checked it as well
        assert part.content_md5 == base64.b64encode(hashlib.md5(chunk).digest()).decode()
        etags.append(part.etag)

    listed = client.list_parts(oss.ListPartsRequest(bucket=bucket, key=key, upload_id=upload_id))
    assert listed.key == key and listed.upload_id == upload_id
    assert [(p.part_number, p.size, p.etag) for p in listed.parts] == [
        (n, len(chunk), etags[n - 1]) for n, chunk in enumerate(data, 1)
    ]
    assert [p.hash_crc64 for p in listed.parts] == [str(crc64(c)) for c in data]

    whole = b"".join(data)
    done = complete(client, bucket, key, upload_id, list(enumerate(etags, 1)))
    assert done.status_code == 200
    assert (done.bucket, done.key) == (bucket, key)
    digests = b"".join(hashlib.md5(c).digest() for c in data)
    assert done.etag == f'"{hashlib.md5(digests).hexdigest().upper()}-3"'
    assert done.headers["ETag"] == done.etag
    assert done.hash_crc64 == str(sdk_crc64(whole))

    got = client.get_object(oss.GetObjectRequest(bucket=bucket, key=key))
    assert got.body.read() == whole
    assert (got.hash_crc64, got.etag) == (str(sdk_crc64(whole)), done.etag)
    head = client.head_object(oss.HeadObjectRequest(bucket=bucket, key=key))
    assert (head.content_length, head.etag, head.hash_crc64) == (
        len(whole),
        done.etag,
        str(sdk_crc64(whole)),
    )

    assert pending(client, bucket) == []
    assert server.control("GET", "uploads") == {"uploads": []}
    assert not (server.root / "uploads" / upload_id).exists(), "parts are removed"
    counted = stats(server)
    assert counted["operations"]["UploadPart"] == {
        "requests": 3,
        "bytes_received": len(whole),
        "responses_by_status": {"200": 3},
    }
    assert counted["operations"]["InitiateMultipartUpload"]["requests"] == 1
    assert counted["operations"]["CompleteMultipartUpload"]["requests"] == 1
    assert "PutObject" not in counted["operations"]
    assert counted["bytes_received_by_method"]["PUT"] == len(whole)
    subresources = counted["requests_by_subresource"]
    assert subresources["partNumber"] == 3
    assert subresources["uploads"] == 1 + 2  # the initiate, then two ListMultipartUploads


def test_reuploaded_part_replaces_the_first(server: OssServer, bucket: str) -> None:
    client = server.sdk_client()
    upload_id = initiate(client, bucket, "k")
    first = upload_part(client, bucket, "k", upload_id, 1, b"x" * PART).etag
    second = upload_part(client, bucket, "k", upload_id, 1, b"y" * PART).etag
    last = upload_part(client, bucket, "k", upload_id, 2, b"tail").etag
    listed = client.list_parts(oss.ListPartsRequest(bucket=bucket, key="k", upload_id=upload_id))
    assert [(p.part_number, p.etag) for p in listed.parts] == [(1, second), (2, last)]
    with pytest.raises(oss.exceptions.OperationError) as info:
        complete(client, bucket, "k", upload_id, [(1, first), (2, last)])
    assert service_error(info) == (400, "InvalidPart")
    complete(client, bucket, "k", upload_id, [(1, second), (2, last)])
    assert get(client, bucket, "k") == b"y" * PART + b"tail"


def test_complete_all_takes_every_part(server: OssServer, bucket: str) -> None:
    client = server.sdk_client()
    upload_id = initiate(client, bucket, "all")
    upload_part(client, bucket, "all", upload_id, 2, b"2" * PART)
    upload_part(client, bucket, "all", upload_id, 5, b"5")
    done = client.complete_multipart_upload(
        oss.CompleteMultipartUploadRequest(
            bucket=bucket, key="all", upload_id=upload_id, complete_all="yes"
        )
    )
    assert done.etag.endswith('-2"')
    assert get(client, bucket, "all") == b"2" * PART + b"5"


def test_complete_refusals(server: OssServer, bucket: str) -> None:
    client = server.sdk_client()
    key = "refused"
    upload_id = initiate(client, bucket, key)
    e1 = upload_part(client, bucket, key, upload_id, 1, b"1" * PART).etag
    e2 = upload_part(client, bucket, key, upload_id, 2, b"2" * (PART - 1)).etag
    e3 = upload_part(client, bucket, key, upload_id, 3, b"3").etag

    def refused(parts: list[tuple[int, str]]) -> tuple[int, str]:
        with pytest.raises(oss.exceptions.OperationError) as info:
            complete(client, bucket, key, upload_id, parts)
        return service_error(info)

    assert refused([(2, e2), (1, e1)]) == (400, "InvalidPartOrder")
    assert refused([(1, e1), (1, e1)]) == (400, "InvalidPartOrder")
    assert refused([(1, e2)]) == (400, "InvalidPart"), "an ETag of another part"
    assert refused([(1, e1), (4, e3)]) == (400, "InvalidPart"), "a part never uploaded"
    assert refused([(1, e1), (2, e2), (3, e3)]) == (400, "EntityTooSmall")
    # The SDK sends `<CompleteMultipartUpload></CompleteMultipartUpload>` for no parts.
    assert refused([]) == (400, "MalformedXML")
    for body in (b"<CompleteMultipartUpload/>", b"<not-xml", b""):
        answer = send(server, "POST", bucket, key, [("uploadId", upload_id)], body=body)
        assert (answer.status, answer.code()) == (400, "MalformedXML"), body
    wrong_md5 = {"Content-MD5": base64.b64encode(hashlib.md5(b"other").digest()).decode()}
    body = complete_body([(1, e1), (3, e3)])
    answer = send(
        server, "POST", bucket, key, [("uploadId", upload_id)], body=body, headers=wrong_md5
    )
    assert (answer.status, answer.code()) == (400, "InvalidDigest")

    # Nothing refused touched the upload; parts need not be consecutive, only ascending.
    assert pending(client, bucket) == [(key, upload_id)]
    done = complete(client, bucket, key, upload_id, [(1, e1), (3, e3)])
    assert done.hash_crc64 == str(crc64(b"1" * PART + b"3"))
    assert get(client, bucket, key) == b"1" * PART + b"3"
    assert refused([(1, e1), (3, e3)]) == (404, "NoSuchUpload"), "a completed upload is gone"


def test_part_number_and_upload_id_are_checked(server: OssServer, bucket: str) -> None:
    client = server.sdk_client()
    upload_id = initiate(client, bucket, "k")
    for number in (0, 10001):
        with pytest.raises(oss.exceptions.OperationError) as info:
            upload_part(client, bucket, "k", upload_id, number, b"x")
        assert service_error(info) == (400, "InvalidArgument")
    for bad_id, key in (("0" * 32, "k"), (upload_id, "another-key")):
        with pytest.raises(oss.exceptions.OperationError) as info:
            upload_part(client, bucket, key, bad_id, 1, b"x")
        assert service_error(info) == (404, "NoSuchUpload")
    wrong_md5 = base64.b64encode(hashlib.md5(b"y").digest()).decode()
    with pytest.raises(oss.exceptions.OperationError) as info:
        upload_part(client, bucket, "k", upload_id, 1, b"x", content_md5=wrong_md5)
    assert service_error(info) == (400, "InvalidDigest")
    listed = client.list_parts(oss.ListPartsRequest(bucket=bucket, key="k", upload_id=upload_id))
    assert not listed.parts, "no refused part was kept"


def test_abort(server: OssServer, bucket: str) -> None:
    client = server.sdk_client()
    kept = initiate(client, bucket, "k")
    upload_id = initiate(client, bucket, "k")
    etag = upload_part(client, bucket, "k", upload_id, 1, b"data").etag
    assert (server.root / "uploads" / upload_id).is_dir(), "parts are stored on disk"
    assert pending(client, bucket) == [("k", kept), ("k", upload_id)], "oldest first"

    aborted = client.abort_multipart_upload(
        oss.AbortMultipartUploadRequest(bucket=bucket, key="k", upload_id=upload_id)
    )
    assert aborted.status_code == 204
    assert pending(client, bucket) == [("k", kept)]
    assert not (server.root / "uploads" / upload_id).exists()
    with pytest.raises(oss.exceptions.OperationError) as info:
        complete(client, bucket, "k", upload_id, [(1, etag)])
    assert service_error(info) == (404, "NoSuchUpload")
    with pytest.raises(oss.exceptions.OperationError) as info:
        upload_part(client, bucket, "k", upload_id, 2, b"late")
    assert service_error(info) == (404, "NoSuchUpload")
    with pytest.raises(oss.exceptions.OperationError) as info:
        client.abort_multipart_upload(
            oss.AbortMultipartUploadRequest(bucket=bucket, key="k", upload_id=upload_id)
        )
    assert service_error(info) == (404, "NoSuchUpload")
    client.abort_multipart_upload(
        oss.AbortMultipartUploadRequest(bucket=bucket, key="k", upload_id=kept)
    )
    assert pending(client, bucket) == []


def test_list_multipart_uploads(server: OssServer, bucket: str) -> None:
    client = server.sdk_client()
    keys = ["a/1", "a/2 x+y", "a/2 x+y", "b/日本", "c"]
    ids = [initiate(client, bucket, key) for key in keys]
    expected = sorted(zip(keys, ids, strict=True))
    assert pending(client, bucket) == expected, "paged by key-marker and upload-id-marker"
    assert pending(client, bucket, prefix="a/") == expected[:3]
    page = client.list_multipart_uploads(oss.ListMultipartUploadsRequest(bucket=bucket))
    initiated = page.uploads[0].initiated
    assert abs(initiated.timestamp() - time.time()) < 60
    # The SDK's result has no CommonPrefixes: read the document itself.
    rolled = send(server, "GET", bucket, None, [("uploads", ""), ("delimiter", "/")])
    root = ET.fromstring(rolled.body)
    assert root.tag == "ListMultipartUploadsResult" and b"xmlns" not in rolled.body
    assert [p.text for p in root.iterfind("CommonPrefixes/Prefix")] == ["a/", "b/"]
    assert [k.text for k in root.iterfind("Upload/Key")] == ["c"]
    assert root.findtext("Delimiter") == "/" and root.findtext("IsTruncated") == "false"
    with pytest.raises(oss.exceptions.OperationError) as info:
        client.list_multipart_uploads(oss.ListMultipartUploadsRequest(bucket="no-such-bkt-w"))
    assert service_error(info) == (404, "NoSuchBucket")
    with pytest.raises(oss.exceptions.OperationError) as info:
        initiate(client, "no-such-bkt-w", "k")
    assert service_error(info) == (404, "NoSuchBucket")


def test_complete_replaces_the_object_at_once(server: OssServer, bucket: str) -> None:
    """Readers racing a Complete get the old object or the new one, whole, never an error."""
    client = server.sdk_client()
    old, new = b"o" * (3 * PART), b"n" * PART + b"m" * 10
    server.put(bucket, "swap", old)
    upload_id = initiate(client, bucket, "swap")
    e1 = upload_part(client, bucket, "swap", upload_id, 1, new[:PART]).etag
    e2 = upload_part(client, bucket, "swap", upload_id, 2, new[PART:]).etag
    seen: list[str] = []
    stop = threading.Event()

    def read() -> None:
        reader = once_client(server)
        while not stop.is_set():
            try:
                body = get(reader, bucket, "swap")
                seen.append("old" if body == old else "new" if body == new else "mixed")
            except Exception as e:  # a failure is an outcome the assert below reports
                seen.append(repr(e))

    def wait_for(count: int) -> None:
        deadline = time.monotonic() + 10
        while len(seen) < count and time.monotonic() < deadline:
            time.sleep(0.01)

    threads = [threading.Thread(target=read) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        wait_for(4)
        complete(client, bucket, "swap", upload_id, [(1, e1), (2, e2)])
        wait_for(len(seen) + 6)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert set(seen) == {"old", "new"}, [s for s in seen if s not in ("old", "new")][:3]
    assert seen[0] == "old" and seen[-1] == "new"


# -- PutObject, CopyObject, DeleteObject, HeadObject ------------------------------------------


def test_put_object(server: OssServer, bucket: str) -> None:
    client = server.sdk_client()
    data = os.urandom(5000)
    md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
    put = client.put_object(
        oss.PutObjectRequest(bucket=bucket, key="p", body=data, content_md5=md5)
    )
    assert put.status_code == 200
    assert put.etag == f'"{hashlib.md5(data).hexdigest().upper()}"'
    assert put.hash_crc64 == str(sdk_crc64(data))
    assert put.content_md5 == md5

    for bad in (base64.b64encode(hashlib.md5(b"x").digest()).decode(), "not-base64"):
        with pytest.raises(oss.exceptions.OperationError) as info:
            client.put_object(
                oss.PutObjectRequest(bucket=bucket, key="p", body=b"changed", content_md5=bad)
            )
        assert service_error(info) == (400, "InvalidDigest")
    assert get(client, bucket, "p") == data, "a refused body never replaces the object"

    with pytest.raises(oss.exceptions.OperationError) as info:
        client.put_object(
            oss.PutObjectRequest(bucket=bucket, key="p", body=b"again", forbid_overwrite=True)
        )
    assert service_error(info) == (409, "FileAlreadyExists")
    counted = stats(server)
    assert counted["operations"]["PutObject"]["requests"] == 4
    assert counted["operations"]["PutObject"]["responses_by_status"] == {
        "200": 1,
        "400": 2,
        "409": 1,
    }
    assert "UploadPart" not in counted["operations"]


def test_copy_object(server: OssServer, bucket: str) -> None:
    client = server.sdk_client()
    data = os.urandom(3000)
    src_key = "src/a b+c%d/日本"
    put = client.put_object(
        oss.PutObjectRequest(bucket=bucket, key=src_key, body=data, content_type="text/plain")
    )
    other = f"{bucket}-dst"
    client.put_bucket(oss.PutBucketRequest(bucket=other))
    for dst_bucket, dst_key in ((bucket, "copy"), (other, "there/copy")):
        copied = client.copy_object(
            oss.CopyObjectRequest(
                bucket=dst_bucket, key=dst_key, source_bucket=bucket, source_key=src_key
            )
        )
        assert copied.status_code == 200
        assert copied.etag == put.etag
        assert copied.hash_crc64 == str(sdk_crc64(data))
        assert abs(copied.last_modified.timestamp() - time.time()) < 60
        got = client.get_object(oss.GetObjectRequest(bucket=dst_bucket, key=dst_key))
        assert got.body.read() == data
        assert got.content_type == "text/plain", "metadata is copied by default"

    replaced = client.copy_object(
        oss.CopyObjectRequest(
            bucket=bucket,
            key="retyped",
            source_key=src_key,
            metadata_directive="REPLACE",
            content_type="application/x-test",
        )
    )
    assert replaced.status_code == 200
    head = client.head_object(oss.HeadObjectRequest(bucket=bucket, key="retyped"))
    assert head.content_type == "application/x-test"

    # The copy is its own object: overwriting or deleting the source leaves it alone.
    server.put(bucket, src_key, b"new source")
    assert get(client, bucket, "copy") == data

    for source_bucket, source_key, expected in (
        (bucket, "missing", (404, "NoSuchKey")),
        ("no-such-bkt-w", "k", (404, "NoSuchBucket")),
    ):
        with pytest.raises(oss.exceptions.OperationError) as info:
            client.copy_object(
                oss.CopyObjectRequest(
                    bucket=bucket, key="c2", source_bucket=source_bucket, source_key=source_key
                )
            )
        assert service_error(info) == expected
    with pytest.raises(oss.exceptions.OperationError) as info:
        client.copy_object(
            oss.CopyObjectRequest(bucket=bucket, key="c3", source_key=src_key, if_match='"0"')
        )
    assert service_error(info) == (412, "PreconditionFailed")
    assert stats(server)["requests_by_subresource"]["copy"] == 6


def test_delete_object(server: OssServer, bucket: str) -> None:
    client = server.sdk_client()
    server.put(bucket, "d", b"doomed")
    deleted = client.delete_object(oss.DeleteObjectRequest(bucket=bucket, key="d"))
    assert deleted.status_code == 204
    with pytest.raises(oss.exceptions.OperationError) as info:
        get(client, bucket, "d")
    assert service_error(info) == (404, "NoSuchKey")
    again = client.delete_object(oss.DeleteObjectRequest(bucket=bucket, key="d"))
    assert again.status_code == 204, "a missing key is deleted all the same"
    with pytest.raises(oss.exceptions.OperationError) as info:
        client.delete_object(oss.DeleteObjectRequest(bucket="no-such-bkt-w", key="d"))
    assert service_error(info) == (404, "NoSuchBucket")


def test_head_object(server: OssServer, bucket: str) -> None:
    client = server.sdk_client()
    data = b"head me"
    server.put(bucket, "h", data)
    head = client.head_object(oss.HeadObjectRequest(bucket=bucket, key="h"))
    assert head.status_code == 200
    assert head.content_length == len(data)
    assert head.etag == f'"{hashlib.md5(data).hexdigest().upper()}"'
    assert head.hash_crc64 == str(crc64(data))
    assert head.last_modified is not None
    assert head.headers["Last-Modified"].endswith(" GMT")

    answer = send(server, "HEAD", bucket, "missing")
    assert (answer.status, answer.body) == (404, b"")
    doc = ET.fromstring(base64.b64decode(answer.headers["x-oss-err"]))
    assert doc.findtext("Code") == "NoSuchKey"
    assert doc.findtext("RequestId") == answer.headers["x-oss-request-id"]
    with pytest.raises(oss.exceptions.OperationError) as info:
        client.head_object(oss.HeadObjectRequest(bucket=bucket, key="missing"))
    assert service_error(info) == (404, "NoSuchKey")


# -- every write is signed ------------------------------------------------------------------


def test_writes_with_a_bad_signature_are_refused(server: OssServer, bucket: str) -> None:
    """The SDK signing with the wrong secret: every operation is refused, nothing changes."""
    good = server.sdk_client()
    bad = server.sdk_client(access_key_secret="not-the-secret")
    server.put(bucket, "exists", b"v")
    upload_id = initiate(good, bucket, "up")
    etag = upload_part(good, bucket, "up", upload_id, 1, b"p").etag
    calls: dict[str, Callable[[oss.Client], object]] = {
        "PutObject": lambda c: c.put_object(
            oss.PutObjectRequest(bucket=bucket, key="exists", body=b"evil")
        ),
        "InitiateMultipartUpload": lambda c: initiate(c, bucket, "up2"),
        "UploadPart": lambda c: upload_part(c, bucket, "up", upload_id, 1, b"evil"),
        "CompleteMultipartUpload": lambda c: complete(c, bucket, "up", upload_id, [(1, etag)]),
        "AbortMultipartUpload": lambda c: c.abort_multipart_upload(
            oss.AbortMultipartUploadRequest(bucket=bucket, key="up", upload_id=upload_id)
        ),
        "ListMultipartUploads": lambda c: pending(c, bucket),
        "ListParts": lambda c: c.list_parts(
            oss.ListPartsRequest(bucket=bucket, key="up", upload_id=upload_id)
        ),
        "CopyObject": lambda c: c.copy_object(
            oss.CopyObjectRequest(bucket=bucket, key="exists", source_key="up")
        ),
        "DeleteObject": lambda c: c.delete_object(
            oss.DeleteObjectRequest(bucket=bucket, key="exists")
        ),
        "HeadObject": lambda c: c.head_object(oss.HeadObjectRequest(bucket=bucket, key="exists")),
    }
    for name, call in calls.items():
        with pytest.raises(oss.exceptions.OperationError) as info:
            call(bad)
        assert service_error(info) == (403, "SignatureDoesNotMatch"), name
    assert set(stats(server)["operations"]) >= set(calls)
    assert get(good, bucket, "exists") == b"v"
    assert pending(good, bucket) == [("up", upload_id)]
    parts = good.list_parts(oss.ListPartsRequest(bucket=bucket, key="up", upload_id=upload_id))
    assert [p.etag for p in parts.parts] == [etag]


def test_sub_resources_are_part_of_the_signature(server: OssServer, bucket: str) -> None:
    upload_id = initiate(server.sdk_client(), bucket, "k")
    signed_as_1 = send(
        server,
        "PUT",
        bucket,
        "k",
        [("partNumber", "2"), ("uploadId", upload_id)],
        signed_query=[("partNumber", "1"), ("uploadId", upload_id)],
        body=b"x",
    )
    assert (signed_as_1.status, signed_as_1.code()) == (403, "SignatureDoesNotMatch")
    as_put_object = send(server, "POST", bucket, "k", [("uploads", "")], signed_query=[], body=b"")
    assert (as_put_object.status, as_put_object.code()) == (403, "SignatureDoesNotMatch")
    # `uploads` with an empty value is signed as a bare name: this one is let in.
    assert send(server, "POST", bucket, "k2", [("uploads", "")]).status == 200

    for method, key, query in (
        ("PUT", "k", [("partNumber", "1"), ("uploadId", upload_id)]),
        ("POST", "k", [("uploadId", upload_id)]),
        ("DELETE", "k", [("uploadId", upload_id)]),
        ("PUT", "k", []),
    ):
        unsigned = send(server, method, bucket, key, query, body=b"x", sign=False)
        assert (unsigned.status, unsigned.code()) == (403, "AccessDenied"), (method, query)
    copy = send(
        server,
        "PUT",
        bucket,
        "c",
        signed_query=None,
        headers={"x-oss-copy-source": f"/{bucket}/k"},
        secret="wrong",
    )
    assert (copy.status, copy.code()) == (403, "SignatureDoesNotMatch")
    assert len(pending(server.sdk_client(), bucket)) == 2


# -- faults on writes -----------------------------------------------------------------------


def test_default_plan_leaves_writes_alone(server: OssServer, bucket: str) -> None:
    server.set_faults(p_503=1.0)  # scope "get", as before writes existed
    client = once_client(server)
    client.put_object(oss.PutObjectRequest(bucket=bucket, key="k", body=b"v"))
    upload_id = initiate(client, bucket, "m")
    etag = upload_part(client, bucket, "m", upload_id, 1, b"p").etag
    complete(client, bucket, "m", upload_id, [(1, etag)])
    client.delete_object(oss.DeleteObjectRequest(bucket=bucket, key="k"))
    assert stats(server)["faults_by_kind"] == {}


def test_503_on_puts_and_posts(server: OssServer, bucket: str) -> None:
    client = once_client(server)
    upload_id = initiate(client, bucket, "m")
    server.set_faults(scope="put", p_503=1.0)
    with pytest.raises(oss.exceptions.OperationError) as info:
        client.put_object(oss.PutObjectRequest(bucket=bucket, key="k", body=b"v" * 1000))
    assert service_error(info) == (503, "ServiceUnavailable")
    with pytest.raises(oss.exceptions.OperationError) as info:
        upload_part(client, bucket, "m", upload_id, 1, b"p" * PART)
    assert service_error(info) == (503, "ServiceUnavailable")
    server.set_faults(scope="UploadPart", p_503=1.0, keys_prefix="other/")
    etag = upload_part(client, bucket, "m", upload_id, 1, b"p").etag
    server.set_faults(scope="post", p_503=1.0, bucket=bucket)
    with pytest.raises(oss.exceptions.OperationError) as info:
        complete(client, bucket, "m", upload_id, [(1, etag)])
    assert service_error(info) == (503, "ServiceUnavailable")
    assert pending(client, bucket) == [("m", upload_id)], "a refused Complete changes nothing"
    server.clear_faults()
    complete(client, bucket, "m", upload_id, [(1, etag)])
    counted = stats(server)
    assert counted["faults_by_kind"] == {"503": 3}
    assert counted["operations"]["UploadPart"]["responses_by_status"] == {"503": 1, "200": 1}
    assert counted["operations"]["CompleteMultipartUpload"]["responses_by_status"] == {
        "503": 1,
        "200": 1,
    }


def test_sdk_retries_a_burst_on_parts(server: OssServer, bucket: str) -> None:
    client = server.sdk_client()  # 3 attempts
    upload_id = initiate(client, bucket, "m")
    server.set_faults(scope="UploadPart", burst={"count": 2})
    etag = upload_part(client, bucket, "m", upload_id, 1, b"p" * PART).etag
    assert op_statuses(server, "UploadPart", answers=3) == {"503": 2, "200": 1}
    assert stats(server)["operations"]["UploadPart"]["bytes_received"] == 3 * PART
    complete(client, bucket, "m", upload_id, [(1, etag)])


def test_reset_mid_request_while_the_client_sends(server: OssServer, bucket: str) -> None:
    server.set_faults(scope="put", p_reset_mid_request=1.0)
    size = 32 << 20
    target, headers = signed_request(server, "PUT", bucket, "big", body=b"")
    headers["Content-Length"] = str(size)
    head = f"PUT {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head.encode() + b"\r\n")
        chunk = b"z" * (1 << 20)
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            for _ in range(size // len(chunk)):
                sock.sendall(chunk)
            sock.recv(1)  # everything fit in the socket buffers: the reset shows here
    counted = stats_when(server, lambda st: "PutObject" in st["operations"])
    received = counted["operations"]["PutObject"]["bytes_received"]
    assert 0 < received <= 1 << 20
    with pytest.raises(oss.exceptions.OperationError) as info:
        server.sdk_client().head_object(oss.HeadObjectRequest(bucket=bucket, key="big"))
    assert service_error(info) == (404, "NoSuchKey"), "nothing was written"

    client = once_client(server)
    with pytest.raises(oss.exceptions.OperationError):
        client.put_object(oss.PutObjectRequest(bucket=bucket, key="small", body=b"s" * 5000))
    faults = stats_when(server, lambda st: st["faults_by_kind"].get("reset_mid_request") == 2)
    assert faults["faults_by_kind"] == {"reset_mid_request": 2}


def test_reset_after_request_performs_nothing(server: OssServer, bucket: str) -> None:
    client = once_client(server)
    upload_id = initiate(client, bucket, "m")
    server.set_faults(scope="UploadPart", p_reset_after_request=1.0)
    with pytest.raises(oss.exceptions.OperationError):
        upload_part(client, bucket, "m", upload_id, 1, b"p" * PART)
    server.clear_faults()
    parts = client.list_parts(oss.ListPartsRequest(bucket=bucket, key="m", upload_id=upload_id))
    assert not parts.parts
    assert stats(server)["operations"]["UploadPart"]["bytes_received"] == PART


def test_lost_complete_answer(server: OssServer, bucket: str) -> None:
    """p_reset: OSS did the work and the answer was lost, so a retried Complete finds no
    upload; a client must then check the object (HEAD) rather than fail."""
    client = once_client(server)
    upload_id = initiate(client, bucket, "m")
    etag = upload_part(client, bucket, "m", upload_id, 1, b"p" * 10).etag
    server.set_faults(scope="CompleteMultipartUpload", p_reset=1.0)
    with pytest.raises(oss.exceptions.OperationError):
        complete(client, bucket, "m", upload_id, [(1, etag)])
    server.clear_faults()
    with pytest.raises(oss.exceptions.OperationError) as info:
        complete(client, bucket, "m", upload_id, [(1, etag)])
    assert service_error(info) == (404, "NoSuchUpload")
    head = client.head_object(oss.HeadObjectRequest(bucket=bucket, key="m"))
    assert head.etag.endswith('-1"') and head.content_length == 10


def test_stall_delays_a_put(server: OssServer, bucket: str) -> None:
    server.set_faults(scope="PutObject", p_stall=1.0, stall_s=0.3)
    started = time.monotonic()
    once_client(server).put_object(oss.PutObjectRequest(bucket=bucket, key="k", body=b"v"))
    assert time.monotonic() - started >= 0.3
    assert stats(server)["faults_by_kind"] == {"stall": 1}


def test_same_seed_same_decisions_on_puts(server: OssServer, bucket: str) -> None:
    client = once_client(server)

    def run(seed: int) -> list[int]:
        server.set_faults(seed=seed, scope=["put", "post"], p_503=0.5)
        statuses = []
        for i in range(16):
            try:
                statuses.append(
                    client.put_object(
                        oss.PutObjectRequest(bucket=bucket, key=f"k{i}", body=b"v")
                    ).status_code
                )
            except oss.exceptions.OperationError as e:
                statuses.append(e.unwrap().status_code)
        return statuses

    first = run(7)
    assert set(first) == {200, 503}
    assert run(7) == first
    assert run(8) != first


# -- units ----------------------------------------------------------------------------------


def test_crc64_combine_matches_the_sdk() -> None:
    a, b = os.urandom(1000), os.urandom(PART + 7)
    assert crc64_combine(crc64(a), crc64(b), len(b)) == crc64(a + b) == sdk_crc64(a + b)
    sdk_combine: Callable[[int, int, int], int] = SdkCrc64.combine
    assert sdk_combine(crc64(a), crc64(b), len(b)) == crc64(a + b)
    assert crc64_combine(crc64(a), 0, 0) == crc64(a)
    assert crc64_combine(0, crc64(b), len(b)) == crc64(b)


def test_plans_take_the_new_scopes_and_kinds(server: OssServer) -> None:
    plan = server.set_faults(scope=["UploadPart", "post"], p_reset_after_request=0.5)["plan"]
    assert plan["scope"] == ["UploadPart", "post"] and plan["p_reset_after_request"] == 0.5
    assert plan["methods"] is None
    plan = server.set_faults(methods=["put"], p_503=1.0)["plan"]
    assert (plan["methods"], plan["scope"]) == (["PUT"], ["all"]), "methods alone select"
    with pytest.raises(urllib.error.HTTPError) as info:
        server.set_faults(methods=["PATCH"], p_503=1.0)
    assert info.value.code == 400 and "methods" in info.value.read().decode()


def test_methods_select_requests(server: OssServer, bucket: str) -> None:
    client = once_client(server)
    upload_id = initiate(client, bucket, "m")
    server.set_faults(methods=["PUT"], p_503=1.0, bucket=bucket)
    calls: list[Callable[[], object]] = [
        lambda: client.put_object(oss.PutObjectRequest(bucket=bucket, key="k", body=b"v")),
        lambda: upload_part(client, bucket, "m", upload_id, 1, b"p"),
    ]
    for call in calls:
        with pytest.raises(oss.exceptions.OperationError) as info:
            call()
        assert service_error(info) == (503, "ServiceUnavailable")
    assert pending(client, bucket) == [("m", upload_id)], "GETs pass"
    initiate(client, bucket, "n")  # POSTs pass
    server.set_faults(methods=["POST"], scope="put", p_503=1.0)  # both must match: nothing does
    etag = upload_part(client, bucket, "m", upload_id, 1, b"p").etag
    complete(client, bucket, "m", upload_id, [(1, etag)])
    assert stats(server)["faults_by_kind"] == {"503": 2}


def test_uploads_survive_a_restart(tmp_path: Path) -> None:
    """Uploads are files under the root: a server restarted on it still has them."""
    store = Store(tmp_path)
    store.create_bucket("bkt")
    first = Uploads(tmp_path, store)
    upload = first.initiate("bkt", "k", "text/plain")
    first.upload_part("bkt", "k", upload.upload_id, 1, [b"a" * PART], None)
    first.upload_part("bkt", "k", upload.upload_id, 2, [b"b", b"c"], None)
    again = Uploads(tmp_path, Store(tmp_path))
    kept = again.get("bkt", "k", upload.upload_id)
    assert [(p.number, p.size) for p in kept.parts.values()] == [(1, PART), (2, 2)]
    meta = again.complete("bkt", "k", upload.upload_id, None)
    assert (meta.size, meta.crc64, meta.content_type) == (
        PART + 2,
        crc64(b"a" * PART + b"bc"),
        "text/plain",
    )
    assert not list((tmp_path / "uploads").iterdir())
