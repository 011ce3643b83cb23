"""A 1 GiB object read in 8 MiB pieces (and with readinto into one reused buffer): the peak RSS of
the reading process grows by at most prefetchMB + 100 MiB over its size after importing torch and
the package. Objects small enough to be lent memory whole (up to twice prefetchMB) and read in
pieces: the first is held whole until done, then lending stops, so at most three budgets."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import OssServer
from oss_server import iter_generated

GIB = 1024**3
MIB = 1024**2
PREFETCH_MB = 128

READER = r"""
import hashlib, json, resource, sys
import torch  # noqa: F401  (the baseline includes torch, as in training)
from osstorchconnector import OssIterableDataset

mode, factory, uri, endpoint, region, cred, config = sys.argv[1:]
opts = dict(endpoint=endpoint, region=region, cred_path=cred, config_path=config)
if factory == "prefix":
    ds = OssIterableDataset.from_prefix(uri, **opts)
else:
    ds = OssIterableDataset.from_objects([uri], **opts)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
h = hashlib.sha256()
total = 0
for obj in ds:
    if mode == "read":
        while piece := obj.read(8 << 20):
            h.update(piece)
            total += len(piece)
    else:
        buf = bytearray(8 << 20)
        view = memoryview(buf)
        while n := obj.readinto(buf):
            h.update(view[:n])
            total += n
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"base_kib": base, "peak_kib": peak, "sha256": h.hexdigest(), "total": total}))
"""


@pytest.fixture(scope="module")
def gib_object(oss_server: OssServer) -> tuple[str, str]:
    bucket = "memory-bound-gib"
    oss_server.sdk_client().put_bucket(
        __import__("alibabacloud_oss_v2").PutBucketRequest(bucket=bucket)
    )
    oss_server.generate(bucket, "huge/one-gib.bin", GIB, seed=11)
    h = hashlib.sha256()
    for block in iter_generated(11, GIB):
        h.update(block)
    return f"oss://{bucket}/huge/one-gib.bin", h.hexdigest()


@pytest.mark.parametrize(("mode", "factory"), [("read", "objects"), ("readinto", "prefix")])
def test_peak_rss_stays_within_budget(
    oss_server: OssServer, gib_object: tuple[str, str], tmp_path: Path, mode: str, factory: str
) -> None:
    uri, digest = gib_object
    if factory == "prefix":
        uri = uri.rsplit("/", 1)[0] + "/"
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps({"datasetConfig": {"prefetchMB": PREFETCH_MB, "prefetchUnitMB": 8}})
    )
    cred = oss_server.write_cred_file(tmp_path / "cred.json")
    args = [mode, factory, uri, oss_server.endpoint, oss_server.region, str(cred), str(config)]
    done = subprocess.run(
        [sys.executable, "-c", READER, *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ},
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["total"] == GIB
    assert report["sha256"] == digest
    growth_mib = (report["peak_kib"] - report["base_kib"]) / 1024
    print(f"{mode}/{factory}: RSS growth {growth_mib:.0f} MiB (bound {PREFETCH_MB + 100} MiB)")
    assert growth_mib <= PREFETCH_MB + 100, report


def test_four_gib_object_within_budget(oss_server: OssServer, tmp_path: Path) -> None:
    # Generated server-side without a CRC (it would take minutes in Python); bytes are checked by
    # digest against the generator instead.
    size = 4 * GIB
    bucket = "memory-bound-4gib"
    oss_server.sdk_client().put_bucket(
        __import__("alibabacloud_oss_v2").PutBucketRequest(bucket=bucket)
    )
    oss_server.generate(bucket, "huge/four-gib.bin", size, seed=4)
    h = hashlib.sha256()
    for block in iter_generated(4, size):
        h.update(block)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"datasetConfig": {"prefetchMB": PREFETCH_MB}}))
    cred = oss_server.write_cred_file(tmp_path / "cred.json")
    uri = f"oss://{bucket}/huge/four-gib.bin"
    args = ["read", "objects", uri, oss_server.endpoint, oss_server.region, str(cred), str(config)]
    done = subprocess.run(
        [sys.executable, "-c", READER, *args], capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["total"] == size and report["sha256"] == h.hexdigest()
    growth_mib = (report["peak_kib"] - report["base_kib"]) / 1024
    print(f"4 GiB: RSS growth {growth_mib:.0f} MiB (bound {PREFETCH_MB + 100} MiB)")
    assert growth_mib <= PREFETCH_MB + 100, report


def test_objects_lent_whole_but_read_in_pieces_stay_within_three_budgets(
    oss_server: OssServer, tmp_path: Path
) -> None:
    budget_mb, object_mb, count = 32, 64, 6
    bucket = "memory-bound-lent"
    oss_server.sdk_client().put_bucket(
        __import__("alibabacloud_oss_v2").PutBucketRequest(bucket=bucket)
    )
    h = hashlib.sha256()
    for i in range(count):
        oss_server.generate(bucket, f"lent/{i:02d}.bin", object_mb * MIB, seed=100 + i)
        for block in iter_generated(100 + i, object_mb * MIB):
            h.update(block)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"datasetConfig": {"prefetchMB": budget_mb, "prefetchUnitMB": 8}}))
    cred = oss_server.write_cred_file(tmp_path / "cred.json")
    uri = f"oss://{bucket}/lent/"
    args = ["read", "prefix", uri, oss_server.endpoint, oss_server.region, str(cred), str(config)]
    done = subprocess.run(
        [sys.executable, "-c", READER, *args], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["total"] == count * object_mb * MIB and report["sha256"] == h.hexdigest()
    growth_mib = (report["peak_kib"] - report["base_kib"]) / 1024
    bound = 3 * budget_mb + 100
    print(f"lent, read in pieces: RSS growth {growth_mib:.0f} MiB (bound {bound} MiB)")
    assert growth_mib <= bound, report
