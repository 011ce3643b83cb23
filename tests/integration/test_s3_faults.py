"""Faults over s3://: s3s-fs behind a fault-injecting proxy (tests/s3_fault_proxy.py) answering
SlowDown and cutting answers with TCP resets. Nothing lost, nothing duplicated, nothing
corrupted, reading and writing; fixtures are written and results read back with minio."""

from __future__ import annotations

import hashlib
import io
import random
from collections import Counter
from collections.abc import Iterator

import pytest
import torch
from s3_fault_proxy import FaultProxy
from s3_server import S3Server

from osstorchconnector import DataObject, OssCheckpoint, OssIterableDataset

COUNT = 300


@pytest.fixture
def proxy(s3_server: S3Server) -> Iterator[FaultProxy]:
    port = int(s3_server.endpoint.rsplit(":", 1)[1])
    proxy = FaultProxy(port)
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def digests(s3_server: S3Server, s3_bucket: str) -> dict[str, str]:
    rng = random.Random(5)
    client = s3_server.client()
    out = {}
    for i in range(COUNT):
        body = rng.randbytes(rng.randint(0, 40_000))
        client.put_object(s3_bucket, f"s/{i:04d}.bin", io.BytesIO(body), len(body))
        out[f"s/{i:04d}.bin"] = hashlib.sha256(body).hexdigest()
    return out


def key_and_digest(obj: DataObject) -> tuple[str, str]:
    return obj.key, hashlib.sha256(obj.read()).hexdigest()


@pytest.mark.parametrize("workers", [0, 2])
def test_storm_over_s3(
    proxy: FaultProxy, s3_bucket: str, digests: dict[str, str], s3_cred: str, workers: int
) -> None:
    proxy.set_faults(p_503=0.1, p_reset=0.05, seed=workers)
    ds = OssIterableDataset.from_prefix(
        f"s3://{s3_bucket}/s/", proxy.endpoint, transform=key_and_digest, cred_path=s3_cred
    )
    loader = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=workers, collate_fn=list)
    got = [item for batch in loader for item in batch]
    assert Counter(got) == Counter(digests.items())  # each once, intact
    assert proxy.counts["503"] > 5 and proxy.counts["reset"] > 2, proxy.counts


def test_checkpoint_saved_through_faults(
    proxy: FaultProxy, s3_server: S3Server, s3_bucket: str, s3_cred: str
) -> None:
    state = {"w": torch.randn(6_000_000)}  # ~23 MB: several parts, each may be refused or cut
    checkpoint = OssCheckpoint(proxy.endpoint, cred_path=s3_cred, protocol="s3")
    proxy.set_faults(p_503=0.2, p_reset=0.1, seed=1)
    with checkpoint.writer(f"s3://{s3_bucket}/ckpt/w.pt") as writer:
        torch.save(state, writer)
    proxy.set_faults()
    written = s3_server.client().get_object(s3_bucket, "ckpt/w.pt").read()
    assert torch.equal(torch.load(io.BytesIO(written), weights_only=True)["w"], state["w"])


def test_a_completion_cut_after_it_was_done_counts_as_done(
    proxy: FaultProxy, s3_server: S3Server, s3_bucket: str, s3_cred: str
) -> None:
    """CompleteMultipartUpload is not idempotent: every one is performed, then its answer cut.
    The writer must see, by the object's size and multipart ETag, that it was done."""
    data = random.Random(2).randbytes(40 << 20)
    checkpoint = OssCheckpoint(proxy.endpoint, cred_path=s3_cred, protocol="s3")
    proxy.set_faults(p_reset=1.0, only="POST /" + s3_bucket + "/big?uploadId=")
    with checkpoint.writer(f"s3://{s3_bucket}/big") as writer:
        writer.write(data)
    assert proxy.counts["reset"] == 1
    assert s3_server.client().get_object(s3_bucket, "big").read() == data
