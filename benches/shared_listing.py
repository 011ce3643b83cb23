"""What reading a shared listing of N keys costs a DataLoader worker: memory and time.

    .venv/bin/python benches/shared_listing.py [--keys 10000000] [--workers 8]

Writes a complete spill file of N ImageNet-like keys (``train/n01440764/n01440764_10026.JPEG``)
page by page with the lister's own encoder, as a listing would, then reads one worker's share
(``1/workers`` of the keys) in a fresh process the way a worker does, and prints the file's
size, the seconds to read the share, and the reading process's VmHWM before and after.
No server is involved: this measures the file and the reader, not LIST requests.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

PAGE = 1000

READER = """
import sys, time
from osstorchconnector import _shared_listing

def hwm():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))

directory, token, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
shared = _shared_listing.SharedListing()
shared.directory, shared.token = directory, token
before = hwm()
t0 = time.perf_counter()
n = sum(1 for _ in shared.entries(None, "imagenet", "train/", 0, 0, workers))
seconds = time.perf_counter() - t0
print(n, f"{seconds:.2f}", before, hwm())
"""


def write_listing(path: str, keys: int) -> None:
    from osstorchconnector._shared_listing import _page_block

    with open(path, "wb") as out:
        for start in range(0, keys, PAGE):
            items = []
            for i in range(start, min(start + PAGE, keys)):
                synset = f"n{1440764 + i % 1000:08d}"
                items.append((f"train/{synset}/{synset}_{i:05d}.JPEG", 100_000 + i, ""))
            token = None if start + PAGE >= keys else f"token-{start}"
            out.write(_page_block(items, token))
        out.write(b"E\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=10_000_000)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        token = "bench"
        # The name a first pass (base seed 0, epoch 0) of a process outside DataLoader uses.
        path = os.path.join(directory, f"osstorchconnector-listing-{token}-0-1-0")
        t0 = time.perf_counter()
        write_listing(path, args.keys)
        written = time.perf_counter() - t0
        run = [sys.executable, "-c", READER, directory, token, str(args.workers)]
        n, seconds, before, after = subprocess.check_output(run, text=True).split()
        size = os.path.getsize(path)
        print(f"keys {args.keys:,}  file {size / 2**20:,.0f} MiB ({size / args.keys:.0f} B/key)")
        print(f"encoding the file (the lister's share of the work): {written:.1f} s")
        print(
            f"one worker of {args.workers} read its {int(n):,} keys in {seconds} s; "
            f"VmHWM {int(before) / 1024:.0f} -> {int(after) / 1024:.0f} MiB"
        )


if __name__ == "__main__":
    main()
