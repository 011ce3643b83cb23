"""boto3 with a thread pool: list with the ListObjectsV2 paginator, then `get_object` on
`--threads` threads (16), at most 2 x threads requests ahead of the consumer, results in order.

One process only: boto3 has no dataset class to put in a DataLoader.
"""

from __future__ import annotations

import argparse
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from _common import cpu_seconds, parse_args, rss_kib, run


def body(args: argparse.Namespace) -> dict[str, Any]:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=args.endpoint,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench-secret",
        config=Config(
            s3={"addressing_style": "path"},
            max_pool_connections=args.threads,
            retries={"max_attempts": 3, "mode": "standard"},
        ),
    )

    def fetch(key: str) -> int:
        return len(client.get_object(Bucket=args.bucket, Key=key)["Body"].read())

    baseline = rss_kib()
    cpu0 = cpu_seconds()
    objects = total = 0
    complete = True
    start = time.perf_counter()
    deadline = start + args.max_seconds
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=args.bucket, Prefix=args.prefix)
    keys = (obj["Key"] for page in pages for obj in page.get("Contents", []))
    window: deque[Future[int]] = deque()
    with ThreadPoolExecutor(max_workers=args.threads) as pool:
        for key in keys:
            window.append(pool.submit(fetch, key))
            if len(window) >= 2 * args.threads:
                total += window.popleft().result()
                objects += 1
                if time.perf_counter() > deadline:
                    complete = False
                    break
        while window:
            future = window.popleft()
            if complete:
                total += future.result()
                objects += 1
            else:
                future.cancel()
        seconds = time.perf_counter() - start
    return {
        "objects": objects,
        "bytes": total,
        "seconds": seconds,
        "complete": complete,
        "rss_baseline_kib": baseline,
        "cpu_before_loop_s": cpu0,
        "loop_cpu_s": cpu_seconds() - cpu0,
        "rss_peak_kib": rss_kib(),
        "children_rss_peak_kib": 0,
    }


if __name__ == "__main__":
    run(parse_args(__doc__ or "", modes=("single",)), body)
