"""How the pipeline behaves toward the process and the server: the GIL is released while
waiting, and dropping an iterator stops its requests."""

from __future__ import annotations

import gc
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import OssServer, start_oss_server, stop_oss_server
from osstorchconnector import OssIterableDataset

DELAY_MS = 300


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OssServer]:
    server = start_oss_server(tmp_path_factory.mktemp("slow") / "root")
    bucket = "pipeline-behaviour"
    server.sdk_client().put_bucket(
        __import__("alibabacloud_oss_v2").PutBucketRequest(bucket=bucket)
    )
    for i in range(100):
        server.put(bucket, f"obj/{i:03d}", b"x" * 1000)
    server.control("POST", "delay", {"delay_ms": DELAY_MS})
    yield server
    stop_oss_server(server)


def dataset(server: OssServer, tmp_path: Path, concurrency: int) -> OssIterableDataset:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"datasetConfig": {"prefetchConcurrency": concurrency}}))
    uris = [f"oss://pipeline-behaviour/obj/{i:03d}" for i in range(100)]
    return OssIterableDataset.from_objects(
        uris,
        endpoint=server.endpoint,
        region=server.region,
        cred_path=str(server.write_cred_file(tmp_path / "cred.json")),
        config_path=str(config),
    )


def test_other_threads_run_while_next_waits(slow_server: OssServer, tmp_path: Path) -> None:
    ticks: list[float] = []
    stop = threading.Event()

    def ticker() -> None:
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.002)

    it = iter(dataset(slow_server, tmp_path, concurrency=1))
    thread = threading.Thread(target=ticker)
    thread.start()
    try:
        began = time.monotonic()
        next(it)  # waits about DELAY_MS for the first byte
        ended = time.monotonic()
    finally:
        stop.set()
        thread.join()
    during = [t for t in ticks if began < t < ended]
    # Holding the GIL for the whole wait would leave the ticker no turn at all; a loaded machine
    # still gives it dozens in 300 ms.
    assert ended - began >= DELAY_MS / 1000 * 0.8
    assert len(during) >= 5, f"{len(during)} ticks in {ended - began:.3f}s"


def test_dropping_the_iterator_stops_requests(slow_server: OssServer, tmp_path: Path) -> None:
    concurrency = 8
    it = iter(dataset(slow_server, tmp_path, concurrency))
    slow_server.reset_stats()
    next(it)
    del it
    gc.collect()
    time.sleep(3 * DELAY_MS / 1000)
    stats = slow_server.stats()
    # The first object plus what was in flight when it arrived; not the other ~90.
    assert stats["requests"] <= 1 + 2 * concurrency, stats
    assert stats["in_flight"] == 0, stats
