"""What every client runner shares: its arguments, the loops it times, the JSON line it prints.

A runner runs in the client's own virtual environment (the official `osstorchconnector` and ours
share an import name), so this module uses the standard library only; torch is imported lazily.
A runner prints exactly one JSON line on stdout, last: ``objects``, ``bytes``, ``seconds`` (of the
timed loop: from asking for the first object to having read the last), ``complete`` (False when
``--max-seconds`` cut the run short), ``rss_baseline_kib`` (ru_maxrss just before the loop,
after importing torch and building the dataset), ``loop_cpu_s`` (CPU seconds of this process and
its reaped children — the DataLoader workers — from just before the loop to just after it),
``rss_peak_kib`` / ``children_rss_peak_kib`` (ru_maxrss of this process and of its largest
child, read right after the loop). The parent also records what the kernel reports for the whole
tree when it exits (start-up and teardown included).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any


def parse_args(
    description: str, modes: tuple[str, ...] = ("single", "loader", "map")
) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--endpoint", required=True, help="http://host:port")
    p.add_argument("--bucket", required=True)
    p.add_argument("--prefix", required=True, help="key prefix, e.g. small/")
    p.add_argument("--tar", default="", help="key of a tar archive (index: KEY.idx) to read")
    p.add_argument("--mode", choices=modes, default=modes[0])
    p.add_argument("--workers", type=int, default=2, help="DataLoader num_workers")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--max-seconds", type=float, default=120.0, help="stop the loop after this")
    p.add_argument("--expect", type=int, default=0, help="objects expected (checked when > 0)")
    p.add_argument("--concurrency", type=int, default=0, help="requests in flight; 0: default")
    p.add_argument("--cred-path", default="", help="credentials JSON (OSS clients)")
    p.add_argument("--config-path", default="", help="connector config JSON (OSS clients)")
    p.add_argument("--region", default="cn-hangzhou")
    p.add_argument("--scheme", default="oss", help="ours: oss or s3 (the protocol spoken)")
    p.add_argument("--paths-file", default="", help="object URL paths, one a line (wrk)")
    p.add_argument("--connections", type=int, default=64, help="wrk connections")
    p.add_argument("--threads", type=int, default=16, help="boto3 thread pool size")
    p.add_argument("--processes", type=int, default=1, help="fresh_recv: processes at once")
    p.add_argument(
        "--hold-previous",
        action="store_true",
        help="fresh_recv: free each object's buffer only once the next object is in",
    )
    p.add_argument(
        "--warm-epochs", type=int, default=0, help="untimed epochs before the timed one (single)"
    )
    return p.parse_args()


def nbytes(obj: Any) -> int:
    """The DataLoader transform: read the whole object, hand back only its length."""
    return len(obj.read())


def rss_kib() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def time_single(items: Iterable[Any], max_seconds: float, warm_epochs: int = 0) -> dict[str, Any]:
    """Iterates `items` in this process, reading every object whole.

    With `warm_epochs`, the process first reads everything that many times, untimed: the timed
    epoch then shows the steady rate of a long-running job, without the process's start-up costs
    (first touches of memory, new connections). `items` must be iterable more than once.

    The iterator and the last object are handed back under ``_keepalive`` so that they are freed
    only after the result has been printed: a client that crashes while tearing down (the official
    connector 1.2.3 does, after copies of large objects) still gets its figures recorded, and the
    crash is reported by the harness.
    """
    for _ in range(warm_epochs):
        for warm in items:
            warm.read()
    baseline = rss_kib()
    cpu0 = cpu_seconds()
    objects = total = 0
    complete = True
    obj = None
    start = time.perf_counter()
    deadline = start + max_seconds
    it = iter(items)
    for obj in it:
        total += len(obj.read())
        objects += 1
        if time.perf_counter() > deadline:
            complete = False
            break
    seconds = time.perf_counter() - start
    result = _result(objects, total, seconds, complete, baseline, cpu0)
    result["_keepalive"] = (items, it, obj)
    return result


def time_loader(
    dataset: Any, workers: int, batch_size: int, max_seconds: float, shuffle: bool = False
) -> dict[str, Any]:
    """Runs `dataset` (whose transform is :func:`nbytes`) through a torch DataLoader; a
    map-style dataset with ``shuffle`` (random batches of indices, as training reads it)."""
    import torch.utils.data

    baseline = rss_kib()
    cpu0 = cpu_seconds()
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, num_workers=workers, shuffle=shuffle
    )
    objects = total = 0
    complete = True
    start = time.perf_counter()
    deadline = start + max_seconds
    for batch in loader:
        objects += len(batch)
        total += int(batch.sum())
        if time.perf_counter() > deadline:
            complete = False
            break
    seconds = time.perf_counter() - start
    del loader  # joins the workers, so their CPU time is counted in ours
    return _result(objects, total, seconds, complete, baseline, cpu0)


def time_oss_datasets(args: argparse.Namespace) -> dict[str, Any]:
    """The connector API shared by ours and the official (same import name, each run in its
    own venv): OssIterableDataset in modes single and loader, OssMapDataset in mode map, from
    the prefix or, with ``--tar``, from the archive and its index (KEY.idx)."""
    from osstorchconnector import OssIterableDataset, OssMapDataset

    cls = OssMapDataset if args.mode == "map" else OssIterableDataset
    conn = {
        "endpoint": args.endpoint,
        "cred_path": args.cred_path,
        "config_path": args.config_path,
        "region": args.region,
    }

    def make(**kw: Any) -> Any:
        if args.tar:
            tar = f"{args.scheme}://{args.bucket}/{args.tar}"
            return cls.from_tar(tar, tar + ".idx", **conn, **kw)
        return cls.from_prefix(f"{args.scheme}://{args.bucket}/{args.prefix}", **conn, **kw)

    if args.mode == "map":
        # the official's DataObjects do not pickle: the transform returns the length
        dataset = make(transform=nbytes)
        return time_loader(dataset, args.workers, args.batch_size, args.max_seconds, shuffle=True)
    if args.mode == "single":
        # default transform, as users write it
        return time_single(make(), args.max_seconds, args.warm_epochs)
    return time_loader(make(transform=nbytes), args.workers, args.batch_size, args.max_seconds)


def cpu_seconds() -> float:
    """CPU time of this process and its reaped children so far (user + system)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _result(
    objects: int, total: int, seconds: float, complete: bool, baseline: int, cpu0: float
) -> dict[str, Any]:
    """The loop's figures. CPU and peak RSS are read here, right after the loop (DataLoader
    workers joined), because interpreter teardown with torch loaded adds ~100 MiB of RSS and
    some CPU that belong to no loop."""
    return {
        "objects": objects,
        "bytes": total,
        "seconds": seconds,
        "complete": complete,
        "rss_baseline_kib": baseline,
        "cpu_before_loop_s": cpu0,
        "loop_cpu_s": cpu_seconds() - cpu0,
        "rss_peak_kib": rss_kib(),
        "children_rss_peak_kib": int(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss),
    }


def run(args: argparse.Namespace, body: Callable[[argparse.Namespace], dict[str, Any]]) -> None:
    """Runs `body` and prints its result (plus the arguments that matter) as the last line."""
    result = body(args)
    keepalive = result.pop("_keepalive", None)
    if args.expect and result["complete"] and result["objects"] != args.expect:
        result["error"] = f"expected {args.expect} objects, got {result['objects']}"
    result.update(mode=args.mode, prefix=args.prefix, concurrency=args.concurrency)
    sys.stdout.flush()
    print(json.dumps(result), flush=True)
    del keepalive  # now the client may tear down (and crash) without losing the figures
