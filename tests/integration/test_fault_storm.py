"""Under injected faults: nothing lost, nothing duplicated, nothing corrupted — with the default
settings — and throttling narrows the requests in flight, which then recover."""

from __future__ import annotations

import hashlib
import os
import random
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import OssServer, start_oss_server, stop_oss_server
from osstorchconnector import DataObject, OssIterableDataset

BUCKET = "fault-storm"
COUNT = 2000


@pytest.fixture(scope="module")
def storm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OssServer, dict[str, str]]]:
    server = start_oss_server(tmp_path_factory.mktemp("storm") / "root")
    server.sdk_client().put_bucket(
        __import__("alibabacloud_oss_v2").PutBucketRequest(bucket=BUCKET)
    )
    rng = random.Random(11)
    objects = {f"s/{i:05d}.bin": rng.randbytes(rng.randint(0, 40_000)) for i in range(COUNT)}
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda kv: server.put(BUCKET, kv[0], kv[1]), objects.items()))
    digests = {k: hashlib.sha256(v).hexdigest() for k, v in objects.items()}
    try:
        yield server, digests
    finally:
        server.clear_faults()
        stop_oss_server(server)


def key_digest(obj: DataObject) -> tuple[str, str]:
    return obj.key, hashlib.sha256(obj.read()).hexdigest()


def storm_dataset(server: OssServer, tmp_path: Path) -> OssIterableDataset:
    # Default settings: no config file at all.
    return OssIterableDataset.from_prefix(
        f"oss://{BUCKET}/s/",
        endpoint=server.endpoint,
        region=server.region,
        cred_path=str(server.write_cred_file(tmp_path / "cred.json")),
        transform=key_digest,
    )


STORM = {"p_503": 0.20, "p_reset": 0.05, "p_truncate": 0.05}


def test_storm_in_one_process(storm: tuple[OssServer, dict[str, str]], tmp_path: Path) -> None:
    server, digests = storm
    server.reset_stats()
    server.set_faults(seed=1, **STORM)
    got = list(storm_dataset(server, tmp_path))
    stats = server.stats()
    faults = stats["faults_by_kind"]
    server.clear_faults()
    print(f"storm: {stats['requests']} requests, faults {faults}")
    assert Counter(k for k, _ in got) == Counter(digests.keys()), "every object exactly once"
    assert dict(got) == digests, "every object's bytes equal the source"
    # The storm really happened: about 30 % of ~2,900 attempts failed.
    assert faults.get("503", 0) > 300 and faults.get("reset", 0) > 50, faults
    assert faults.get("truncate", 0) > 50, faults


def test_storm_with_two_workers(storm: tuple[OssServer, dict[str, str]], tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    server, digests = storm
    server.set_faults(seed=2, **STORM)
    loader = torch.utils.data.DataLoader(
        storm_dataset(server, tmp_path), batch_size=None, num_workers=2
    )
    got = [tuple(item) for item in loader]
    server.clear_faults()
    assert Counter(k for k, _ in got) == Counter(digests.keys())
    assert dict(got) == digests


def test_corrupt_bodies_are_refetched(
    storm: tuple[OssServer, dict[str, str]], tmp_path: Path
) -> None:
    server, digests = storm
    server.reset_stats()
    server.set_faults(seed=3, p_corrupt=0.3, keys_prefix="s/000")
    ds = OssIterableDataset.from_prefix(
        f"oss://{BUCKET}/s/000",
        endpoint=server.endpoint,
        region=server.region,
        cred_path=str(server.write_cred_file(tmp_path / "cred.json")),
        transform=key_digest,
    )
    got = dict(ds)
    corrupted = server.stats()["faults_by_kind"].get("corrupt", 0)
    server.clear_faults()
    assert got == {k: v for k, v in digests.items() if k.startswith("s/000")}
    assert corrupted > 5, "the CRC check caught and refetched corrupted bodies"


@pytest.fixture
def slow(tmp_path: Path) -> Iterator[OssServer]:
    server = start_oss_server(tmp_path / "root", "--delay-ms", "20")
    server.sdk_client().put_bucket(
        __import__("alibabacloud_oss_v2").PutBucketRequest(bucket=BUCKET)
    )
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: server.put(BUCKET, f"t/{i:05d}", os.urandom(500)), range(1500)))
    try:
        yield server
    finally:
        stop_oss_server(server)


def test_throttling_narrows_then_recovers(slow: OssServer, tmp_path: Path) -> None:
    width = 16
    opts = slow.dataset_options(tmp_path, {"datasetConfig": {"prefetchConcurrency": width}})
    uris = [f"oss://{BUCKET}/t/{i:05d}" for i in range(1500)]
    slow.reset_stats()
    slow.set_faults(
        burst={"status": 503, "code": "ServiceUnavailable", "count": 40, "start_after": 300}
    )
    assert len([o.read() for o in OssIterableDataset.from_objects(uris, **opts)]) == 1500
    state = slow.faults()["state"]
    timeline = slow.in_flight_timeline()
    end = timeline[-1][0]
    start_s, end_s = state["burst_started_s"], state["burst_ended_s"]
    before = OssServer.in_flight_between(timeline, 0.05, start_s)
    during = OssServer.in_flight_between(timeline, start_s, end_s + 0.2)
    after = OssServer.in_flight_between(timeline, end_s + 1.0, end)
    report = f"before {before}, burst {during}, after {after}, run {end:.2f}s"
    print(report)
    assert before["max"] >= width - 2, report
    assert during["mean"] < width / 2, f"the client kept hammering the store: {report}"
    assert after["max"] >= 0.6 * width, f"concurrency did not recover: {report}"
    assert after["max"] >= 3 * during["mean"], f"concurrency did not recover: {report}"
