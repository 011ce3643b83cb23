"""The fresh-memory ceiling for large objects: benches/fresh_recv.c (compiled here with `cc` on
first use, into --work-dir) reads each object's 8 MiB ranges over `--connections` keep-alive
connections with blocking recv() straight into a new buffer per object, then frees it. No
Python, no copy, no checksum: what a client that hands over a new buffer per object can reach
on this machine (wrk reads every body into the same memory, which a dataset cannot).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
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


def body(args: argparse.Namespace) -> dict[str, Any]:
    cpu0 = cpu_seconds()
    host, port = args.endpoint.removeprefix("http://").split(":")
    exe = binary(Path(args.paths_file).parent)
    cmd = [str(exe), host, port, args.paths_file, str(args.connections), str(PART)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.max_seconds + 60)
    if done.returncode != 0:
        raise SystemExit(f"fresh_recv failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    s = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "objects": s["objects"],
        "bytes": s["bytes"],
        "seconds": s["seconds"],
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
