"""Integrity over s3://: what the store states (`x-amz-checksum-crc64nvme`, `-crc32c`, `-crc32`,
asked for with `x-amz-checksum-mode: ENABLED`) is checked on every whole-object read, and every
upload hands the store a CRC-64/NVME to check on arrival and keep.

s3s-fs (tests/s3_server.py) checks a PutObject's checksum, keeps it and states it on reads in
checksum mode; it neither checks nor keeps the CRCs of multipart uploads, so those are read off
the requests as a recording proxy (tests/s3_fault_proxy.py) saw them. The CRCs expected are
computed with crcmod and zlib, not with our code; fixtures are written and results read back
with minio."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import re
import struct
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import crcmod
import crcmod.predefined
import pytest
from s3_fault_proxy import FaultProxy, Recorded
from s3_server import S3Server

from osstorchconnector import DataObject, OssCheckpoint, OssClient, OssIterableDataset
from osstorchconnector.exceptions import OssError

# CRC-64/NVME as the CRC catalogue defines it (crcmod's init is the register XOR the final XOR).
crc64nvme: Callable[[bytes], int] = crcmod.mkCrcFun(
    0x1AD93D23594C93659, initCrc=0, rev=True, xorOut=0xFFFFFFFFFFFFFFFF
)
crc32c: Callable[[bytes], int] = crcmod.predefined.mkPredefinedCrcFun("crc-32c")

# How S3 writes each CRC: its big-endian bytes in base64.
ENCODE: dict[str, Callable[[bytes], str]] = {
    "crc64nvme": lambda b: base64.b64encode(struct.pack(">Q", crc64nvme(b))).decode(),
    "crc32c": lambda b: base64.b64encode(struct.pack(">I", crc32c(b))).decode(),
    "crc32": lambda b: base64.b64encode(struct.pack(">I", zlib.crc32(b))).decode(),
}
MIB = 1024 * 1024


def test_the_reference_crcs_are_the_catalogues() -> None:
    assert crc64nvme(b"123456789") == 0xAE8B14860A799888
    assert crc32c(b"123456789") == 0xE3069283


@pytest.fixture
def proxy(s3_server: S3Server) -> Iterator[FaultProxy]:
    proxy = FaultProxy(int(s3_server.endpoint.rsplit(":", 1)[1]))
    try:
        yield proxy
    finally:
        proxy.stop()


def stored_checksums(s3_server: S3Server, bucket: str, key: str) -> dict[str, str]:
    """The `x-amz-checksum-*` headers s3s-fs answers a GET in checksum mode with (via minio)."""
    answer = s3_server.client().get_object(
        bucket, key, request_headers={"x-amz-checksum-mode": "ENABLED"}
    )
    try:
        answer.read()
        return {
            k.lower(): v
            for k, v in answer.headers.items()
            if k.lower().startswith("x-amz-checksum-") and k.lower() != "x-amz-checksum-type"
        }
    finally:
        answer.release_conn()


def test_a_put_hands_the_store_a_crc64nvme_it_checks_and_keeps(
    s3_server: S3Server, s3_bucket: str, s3_cred: str, proxy: FaultProxy
) -> None:
    body = random.Random(1).randbytes(300_000)
    proxy.set_faults(record=True)
    client = OssClient(proxy.endpoint, cred_path=s3_cred, protocol="s3")
    with client.put_object(s3_bucket, "o/put.bin") as writer:
        writer.write(body)
    (put,) = [r for r in proxy.requests if r.method == "PUT"]
    assert put.header("x-amz-checksum-crc64nvme") == ENCODE["crc64nvme"](body)
    assert s3_server.client().get_object(s3_bucket, "o/put.bin").read() == body
    assert stored_checksums(s3_server, s3_bucket, "o/put.bin") == {
        "x-amz-checksum-crc64nvme": ENCODE["crc64nvme"](body)
    }


def test_a_multipart_upload_hands_over_each_parts_crc_and_the_wholes(
    s3_server: S3Server, s3_bucket: str, s3_cred: str, proxy: FaultProxy, tmp_path: Path
) -> None:
    body = random.Random(2).randbytes(12 * MIB + 12345)  # parts of 5, 5 and 2 MiB
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"checkpointConfig": {"uploadIoSizeMB": 5}}))
    proxy.set_faults(record=True)
    checkpoint = OssCheckpoint(
        proxy.endpoint, cred_path=s3_cred, config_path=str(config), protocol="s3"
    )
    with checkpoint.writer(f"s3://{s3_bucket}/ckpt/big.bin") as writer:
        writer.write(body)
    assert s3_server.client().get_object(s3_bucket, "ckpt/big.bin").read() == body

    def only(pattern: str) -> list[Recorded]:
        return [r for r in proxy.requests if re.search(pattern, f"{r.method} {r.path}")]

    (create,) = only(r"^POST .*\?uploads")
    assert create.header("x-amz-checksum-algorithm") == "CRC64NVME"
    assert create.header("x-amz-checksum-type") == "FULL_OBJECT"
    parts = sorted(only(r"^PUT .*partNumber="), key=lambda r: len(r.body), reverse=True)
    assert [len(p.body) for p in parts] == [5 * MIB, 5 * MIB, 2 * MIB + 12345]
    for part in parts:
        assert part.header("x-amz-checksum-crc64nvme") == ENCODE["crc64nvme"](part.body)
    (complete,) = only(r"^POST .*uploadId=")
    assert complete.header("x-amz-checksum-crc64nvme") == ENCODE["crc64nvme"](body)
    assert complete.header("x-amz-checksum-type") == "FULL_OBJECT"
    listed = re.findall(
        rb"<PartNumber>(\d+)</PartNumber><ETag>[^<]*</ETag>"
        rb"<ChecksumCRC64NVME>([^<]+)</ChecksumCRC64NVME>",
        complete.body,
    )
    in_order = [body[i * 5 * MIB : (i + 1) * 5 * MIB] for i in range(3)]
    assert listed == [
        (str(i + 1).encode(), ENCODE["crc64nvme"](p).encode()) for i, p in enumerate(in_order)
    ]


@pytest.fixture
def stated(s3_server: S3Server, s3_bucket: str) -> dict[str, bytes]:
    """Objects written by minio, each with one of the three CRCs S3 states."""
    rng = random.Random(3)
    data = {}
    for i in range(60):
        algorithm = ["crc64nvme", "crc32c", "crc32"][i % 3]
        body = rng.randbytes(rng.randint(1, 60_000))
        key = f"c/{i:03d}.{algorithm}"
        headers = {f"x-amz-checksum-{algorithm}": ENCODE[algorithm](body)}
        s3_server.client().put_object(s3_bucket, key, io.BytesIO(body), len(body), metadata=headers)
        data[key] = body
    # The store kept them: it states each on reads in checksum mode.
    for key, body in list(data.items())[:3]:
        algorithm = key.rsplit(".", 1)[1]
        assert stored_checksums(s3_server, s3_bucket, key) == {
            f"x-amz-checksum-{algorithm}": ENCODE[algorithm](body)
        }
    return data


def key_and_digest(obj: DataObject) -> tuple[str, str]:
    return obj.key, hashlib.sha256(obj.read()).hexdigest()


def test_answers_corrupted_on_the_way_are_caught_by_any_stated_crc_and_read_again(
    s3_bucket: str, s3_cred: str, proxy: FaultProxy, stated: dict[str, bytes]
) -> None:
    # One byte of about a third of the object answers inverted, headers left as they were.
    proxy.set_faults(p_corrupt=0.3, only=f"GET /{s3_bucket}/c/", seed=4)
    uris = [f"s3://{s3_bucket}/{k}" for k in stated]
    ds = OssIterableDataset.from_objects(
        uris, proxy.endpoint, transform=key_and_digest, cred_path=s3_cred
    )
    got = list(ds)
    assert Counter(got) == Counter((k, hashlib.sha256(v).hexdigest()) for k, v in stated.items())
    assert proxy.counts["corrupt"] > 10, proxy.counts


def test_an_object_that_keeps_arriving_corrupt_fails_naming_it_and_the_crc(
    s3_bucket: str, s3_cred: str, proxy: FaultProxy, stated: dict[str, bytes], tmp_path: Path
) -> None:
    key = next(k for k in stated if k.endswith(".crc32c"))
    proxy.set_faults(p_corrupt=1.0, only=f"GET /{s3_bucket}/{key}")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"retryConfig": {"maxAttempts": 3}}))
    ds = OssIterableDataset.from_objects(
        [f"s3://{s3_bucket}/{key}"], proxy.endpoint, cred_path=s3_cred, config_path=str(config)
    )
    with pytest.raises(OssError) as failed:
        [obj.read() for obj in ds]
    message = str(failed.value)
    assert f"s3://{s3_bucket}/{key}" in message and "CRC-32C mismatch" in message, message
    assert proxy.counts["corrupt"] == 3, proxy.counts


def test_uploads_corrupted_on_the_way_are_refused_by_the_store_and_sent_again(
    s3_server: S3Server, s3_bucket: str, s3_cred: str, proxy: FaultProxy
) -> None:
    # s3s-fs answers a body whose CRC-64/NVME does not match it with 400 BadDigest.
    proxy.set_faults(p_corrupt_upload=0.4, only=f"PUT /{s3_bucket}/u/", seed=5)
    client = OssClient(proxy.endpoint, cred_path=s3_cred, protocol="s3")
    rng = random.Random(6)
    data = {f"u/{i:02d}": rng.randbytes(rng.randint(1, 50_000)) for i in range(20)}
    for key, body in data.items():
        with client.put_object(s3_bucket, key) as writer:
            writer.write(body)
    assert proxy.counts["corrupt_upload"] > 3, proxy.counts
    for key, body in data.items():
        assert s3_server.client().get_object(s3_bucket, key).read() == body, key


def test_a_store_that_refuses_crc64nvme_gets_the_upload_without_it(
    s3_server: S3Server, s3_bucket: str, s3_cred: str, proxy: FaultProxy, tmp_path: Path
) -> None:
    """A store older than CRC-64/NVME may refuse its name: the upload is sent once more without
    any checksum header, and succeeds (a PutObject and a multipart upload)."""
    small = random.Random(7).randbytes(100_000)
    big = random.Random(8).randbytes(11 * MIB)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"checkpointConfig": {"uploadIoSizeMB": 5}}))
    proxy.set_faults(refuse_checksums=True, record=True)
    checkpoint = OssCheckpoint(
        proxy.endpoint, cred_path=s3_cred, config_path=str(config), protocol="s3"
    )
    for key, body in (("old/small.bin", small), ("old/big.bin", big)):
        with checkpoint.writer(f"s3://{s3_bucket}/{key}") as writer:
            writer.write(body)
        assert s3_server.client().get_object(s3_bucket, key).read() == body, key
    # Refused once each: the PutObject and the creation of the multipart upload.
    assert proxy.counts["refused_checksum"] == 2, proxy.counts
    sent_crc = [r for r in proxy.requests if r.header("x-amz-checksum-crc64nvme")]
    assert [r.method for r in sent_crc] == ["PUT"], "only the refused PutObject carried one"
