"""What a map-style dataset's catalogue of N keys costs: memory in the process that builds it,
and the time to reach a DataLoader worker started with spawn (fork shares it for free).

    .venv/bin/python benches/catalogue.py [--keys 1000000]

Builds an ``OssMapDataset`` over N ImageNet-like keys (``train/n01440764/n01440764_10026.JPEG``,
listed sizes, no label) without a server (the keys are appended as listing pages would be), and
prints: VmHWM growth while building (VmHWM is reset first through /proc/self/clear_refs), the
pickled size, and how long a spawned process takes from start to having the dataset unpickled,
for N keys and for 1 key (the difference is the catalogue's share).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import pickle
import time
from typing import Any

from osstorchconnector import OssMapDataset
from osstorchconnector._catalogue import Catalogue
from osstorchconnector._client import ClientFactory


def status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def dataset(keys: int) -> OssMapDataset:
    catalogue = Catalogue()
    for i in range(keys):
        synset = f"n{1440764 + i % 1000:08d}"
        catalogue.append("imagenet", f"train/{synset}/{synset}_{i:05d}.JPEG", 100_000 + i, "")
    factory = ClientFactory("http://127.0.0.1:9", region="cn-hangzhou")
    return OssMapDataset(factory, catalogue)


def child(ds: Any, ready: Any) -> None:
    ready.send((time.time(), len(ds)))


def handoff_seconds(ds: OssMapDataset) -> float:
    """Start of a spawned process (given the dataset) to its having the dataset."""
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    start = time.time()
    proc = ctx.Process(target=child, args=(ds, send))
    proc.start()
    arrived, n = recv.recv()
    proc.join()
    assert n == len(ds)
    return float(arrived - start)


def main() -> None:
    # no request is made: any credentials do (workers inherit the environment)
    os.environ.setdefault("OSS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("OSS_ACCESS_KEY_SECRET", "bench-secret")
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--keys", type=int, default=1_000_000)
    a = p.parse_args()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status_kib("VmRSS")
    t = time.perf_counter()
    ds = dataset(a.keys)
    built = time.perf_counter() - t
    growth = (status_kib("VmHWM") - before) / 1024
    held = (status_kib("VmRSS") - before) / 1024
    t = time.perf_counter()
    blob = pickle.dumps(ds, protocol=pickle.HIGHEST_PROTOCOL)
    dumps = time.perf_counter() - t
    t = time.perf_counter()
    pickle.loads(blob)
    loads = time.perf_counter() - t
    small = min(handoff_seconds(dataset(1)) for _ in range(2))
    big = min(handoff_seconds(ds) for _ in range(2))
    print(f"keys: {a.keys:,}; built in {built:.1f} s (appending, as listing pages would)")
    print(f"memory: peak +{growth:.0f} MiB while building, +{held:.0f} MiB held after")
    print(f"pickled: {len(blob) / 2**20:.0f} MiB; dumps {dumps:.2f} s, loads {loads:.2f} s")
    print(
        f"spawned worker has the dataset after {big:.2f} s ({small:.2f} s with 1 key): "
        f"the catalogue adds {big - small:.2f} s"
    )


if __name__ == "__main__":
    main()
