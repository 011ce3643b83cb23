"""The fresh-memory ceiling for large objects: benches/fresh_recv.c (compiled here with `cc` on
first use, into --work-dir) reads each object's 8 MiB ranges over `--connections` keep-alive
connections with blocking recv() straight into a new buffer per object, then frees it. No
Python, no copy, no checksum: what a client that hands over a new buffer per object can reach
on this machine (wrk reads every body into the same memory, which a dataset cannot).

With `--processes 2`, the DataLoader's shape: two programs at once, object i read by program
i % 2 (as the workers share a listing), started by a process that has imported torch (as a
DataLoader's workers are, and torch's memory is what the workers' first touches compete with);
MB/s is all bytes over the slower program's seconds.

With `--hold-previous`, each object's buffer is freed only once the next object is in, as by a
reader that fetches the next object while the consumer still holds the previous one: no object
lands in pages the previous one just gave back.

Also with `--processes 2`: `loader_start_s`, the seconds an empty DataLoader of as many workers
takes (timed after the programs), which the DataLoader mode's clock includes and the programs'
do not.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import time
from pathlib import Path
from typing import Any

from _common import cpu_seconds, parse_args, run

SOURCE = Path(__file__).resolve().parent.parent / "fresh_recv.c"
PART = 8 << 20


def binary(work: Path) -> Path:
    out = work / "fresh_recv"
    if not out.exists() or out.stat().st_mtime < SOURCE.stat().st_mtime:
        subprocess.run(["cc", "-O2", "-pthread", "-o", str(out), str(SOURCE)], check=True)
    return out


def shares(paths_file: Path, processes: int) -> list[Path]:
    """The paths file split as the DataLoader's workers split a listing."""
    if processes == 1:
        return [paths_file]
    lines = paths_file.read_text().splitlines()
    out = []
    for i in range(processes):
        share = paths_file.with_name(f"{paths_file.name}.{i}-of-{processes}")
        share.write_text("".join(f"{p}\n" for p in lines[i::processes]))
        out.append(share)
    return out


def empty_loader_seconds(workers: int) -> float:
    """What a DataLoader of `workers` workers takes with nothing to load: starting and joining
    its workers, which the DataLoader mode's clock counts and the C programs' clocks do not.
    Timed after the programs, so that its workers' memory does not change theirs."""
    import torch.utils.data

    class Nothing(torch.utils.data.IterableDataset):  # type: ignore[type-arg]
        def __iter__(self) -> Any:
            return iter(())

    start = time.perf_counter()
    for _ in torch.utils.data.DataLoader(Nothing(), batch_size=256, num_workers=workers):
        pass
    return time.perf_counter() - start


def body(args: argparse.Namespace) -> dict[str, Any]:
    if args.processes > 1:
        import torch  # noqa: F401  (see the module docstring)
    cpu0 = cpu_seconds()
    host, port = args.endpoint.removeprefix("http://").split(":")
    exe = binary(Path(args.paths_file).parent)
    programs = [
        subprocess.Popen(
            [str(exe), host, port, str(paths), str(args.connections), str(PART)]
            + (["hold"] if args.hold_previous else []),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for paths in shares(Path(args.paths_file), args.processes)
    ]
    results = []
    for program in programs:
        out, err = program.communicate(timeout=args.max_seconds + 60)
        if program.returncode != 0:
            raise SystemExit(f"fresh_recv failed ({program.returncode}):\n{out}\n{err}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    loader_start = empty_loader_seconds(args.processes) if args.processes > 1 else 0.0
    return {
        "loader_start_s": loader_start,
        "objects": sum(s["objects"] for s in results),
        "bytes": sum(s["bytes"] for s in results),
        "seconds": max(s["seconds"] for s in results),
        "complete": True,
        "rss_baseline_kib": 0,
        "cpu_before_loop_s": cpu0,
        "loop_cpu_s": cpu_seconds() - cpu0,  # the C program: a reaped child
        "rss_peak_kib": 0,
        "children_rss_peak_kib": int(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss),
        "connections": args.connections,
    }


if __name__ == "__main__":
    run(parse_args(__doc__ or "", modes=("ceiling",)), body)
