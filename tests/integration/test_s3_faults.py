"""Faults over s3://: s3s-fs behind a fault-injecting proxy (tests/s3_fault_proxy.py) answering
SlowDown, cutting answers with TCP resets and stalling. Nothing lost, nothing duplicated,
nothing corrupted, reading and writing; a stalled store times out naming the URI; a burst of
SlowDown narrows the requests in flight, which then recover. Fixtures are written and results
read back with minio."""

from __future__ import annotations

import hashlib
import io
import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from s3_fault_proxy import FaultProxy
from s3_server import S3Server

from osstorchconnector import DataObject, OssCheckpoint, OssIterableDataset, OssTimeoutError

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


def test_an_expired_token_reloads_the_credentials(
    proxy: FaultProxy, s3_server: S3Server, s3_bucket: str, digests: dict[str, str]
) -> None:
    """A session token the store calls expired is dropped and the provider asked again: the
    read goes on with the new keys instead of failing or retrying the dead ones."""
    handed: list[str] = []

    class Rotating:
        def get_credentials(self) -> SimpleNamespace:
            key_id = "EXPIREDKEY" if not handed else s3_server.access_key
            handed.append(key_id)
            return SimpleNamespace(
                access_key_id=key_id,
                access_key_secret=s3_server.secret_key,
                security_token="session-token",
            )

    proxy.set_faults(expired_key="EXPIREDKEY")
    keys = sorted(digests)[:20]
    ds = OssIterableDataset.from_objects(
        [f"s3://{s3_bucket}/{k}" for k in keys],
        proxy.endpoint,
        transform=key_and_digest,
        cred_provider=Rotating(),
    )
    assert dict(ds) == {k: digests[k] for k in keys}
    assert proxy.counts["expired"] >= 1, proxy.counts
    assert handed[0] == "EXPIREDKEY" and s3_server.access_key in handed[1:], handed


def config(tmp_path: Path, **body: Any) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(body))
    return str(path)


def test_stalled_answers_time_out_and_are_asked_again(
    proxy: FaultProxy, s3_bucket: str, digests: dict[str, str], s3_cred: str, tmp_path: Path
) -> None:
    # A fifth of the answers held back 3 s, ten times the first-byte timeout.
    proxy.set_faults(p_stall=0.2, stall_s=3.0, only=f"GET /{s3_bucket}/s/", seed=7)
    keys = sorted(digests)[:40]
    ds = OssIterableDataset.from_objects(
        [f"s3://{s3_bucket}/{k}" for k in keys],
        proxy.endpoint,
        transform=key_and_digest,
        cred_path=s3_cred,
        config_path=config(tmp_path, retryConfig={"firstByteTimeoutMs": 300}),
    )
    assert dict(ds) == {k: digests[k] for k in keys}
    assert proxy.counts["stall"] > 4, proxy.counts


def test_a_stalled_store_fails_in_time_naming_the_uri(
    proxy: FaultProxy, s3_bucket: str, digests: dict[str, str], s3_cred: str, tmp_path: Path
) -> None:
    key = sorted(digests)[0]
    proxy.set_faults(p_stall=1.0, stall_s=60.0, only=f"GET /{s3_bucket}/{key}")
    ds = OssIterableDataset.from_objects(
        f"s3://{s3_bucket}/{key}",
        proxy.endpoint,
        cred_path=s3_cred,
        config_path=config(tmp_path, retryConfig={"firstByteTimeoutMs": 300, "maxAttempts": 2}),
    )
    started = time.monotonic()
    with pytest.raises(OssTimeoutError, match="firstByteTimeoutMs") as failed:
        list(ds)
    assert f"s3://{s3_bucket}/{key}" in str(failed.value)
    assert (failed.value.bucket, failed.value.key) == (s3_bucket, key)
    # Two attempts of 0.3 s and one backoff of at most 0.2 s: nowhere near the 60 s stall.
    assert time.monotonic() - started < 10


def test_a_slowdown_burst_narrows_the_requests_in_flight_which_then_recover(
    proxy: FaultProxy, s3_server: S3Server, s3_bucket: str, s3_cred: str, tmp_path: Path
) -> None:
    count, width = 700, 16
    client = s3_server.client()
    with ThreadPoolExecutor(16) as pool:
        put = lambda i: client.put_object(s3_bucket, f"t/{i:05d}", io.BytesIO(b"x" * 500), 500)  # noqa: E731
        list(pool.map(put, range(count)))
    uris = [f"s3://{s3_bucket}/t/{i:05d}" for i in range(count)]
    ds = OssIterableDataset.from_objects(
        uris,
        proxy.endpoint,
        cred_path=s3_cred,
        config_path=config(tmp_path, datasetConfig={"prefetchConcurrency": width}),
    )
    # A store 100 ms away (far more than the proxy's own time per request, so that requests
    # pile up in flight) that answers 40 requests in a row with 503 SlowDown after 250.
    proxy.set_faults(delay_s=0.1, burst_after=250, burst_count=40, only=f"GET /{s3_bucket}/t/")
    assert len([o.read() for o in ds]) == count
    start_s, end_s = proxy.burst[0], proxy.burst[-1]
    end = proxy.timeline[-1][0]
    before = proxy.in_flight_between(0.05, start_s)
    during = proxy.in_flight_between(start_s, end_s + 0.2)
    right_after = proxy.in_flight_between(end_s, end_s + 0.2)
    after = proxy.in_flight_between(end_s + 1.0, end)
    report = (
        f"before {before}, burst {during}, first 0.2 s after {right_after}, from 1 s after "
        f"{after}, run {end:.2f}s"
    )
    print(report)
    assert proxy.counts["503"] == 40, proxy.counts
    assert before["max"] >= width - 2, report
    assert during["mean"] < width / 2, f"the client kept hammering the store: {report}"
    assert right_after["max"] <= width / 2, f"the client did not narrow: {report}"
    assert after["max"] >= 0.6 * width, f"concurrency did not recover: {report}"
    assert after["max"] >= 3 * during["mean"], f"concurrency did not recover: {report}"
