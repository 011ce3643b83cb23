"""The server's ceiling: wrk cycling over the workload's object URLs on `--connections`
keep-alive connections for `--max-seconds`.

`bytes` is wrk's own count, which includes the response headers (about 250 bytes a response:
0.2 % of a 100 KiB object). Not a dataset: nothing reaches Python.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import tempfile
from typing import Any

from _common import cpu_seconds, parse_args, run

LUA = """
local paths = {}
for line in io.lines(os.getenv("BENCH_PATHS")) do paths[#paths + 1] = line end
local i = 0
local threads = 0
function setup(thread)  -- runs in the main Lua state: spread the threads' starting points
  thread:set("offset", threads * 7919)
  threads = threads + 1
end
function init(args)
  i = (offset or 0) % #paths
end
function request()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
function done(summary, latency, requests)
  io.write(string.format(
    'WRK {"requests": %d, "bytes": %d, "duration_us": %d, "errors": %d, '
      .. '"p50_us": %d, "p99_us": %d}\\n',
    summary.requests, summary.bytes, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.status + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def body(args: argparse.Namespace) -> dict[str, Any]:
    cpu0 = cpu_seconds()
    wrk = shutil.which("wrk") or "/usr/bin/wrk"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(LUA)
        script = f.name
    try:
        seconds = max(1, round(args.max_seconds))
        cmd = [
            wrk,
            "-t",
            str(min(2, args.connections)),
            "-c",
            str(args.connections),
            "-d",
            f"{seconds}s",
            "--timeout",
            "30s",
            "-s",
            script,
            args.endpoint,
        ]
        env = dict(os.environ, BENCH_PATHS=args.paths_file)
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds + 60)
    finally:
        os.unlink(script)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRK ")), None)
    if line is None:
        raise SystemExit(f"wrk printed no summary:\n{out.stdout}\n{out.stderr}")
    s = json.loads(line[4:])
    result: dict[str, Any] = {
        "objects": s["requests"],
        "bytes": s["bytes"],
        "seconds": s["duration_us"] / 1e6,
        "complete": True,
        "rss_baseline_kib": 0,
        "cpu_before_loop_s": cpu0,
        "loop_cpu_s": cpu_seconds() - cpu0,  # wrk itself: a reaped child
        "rss_peak_kib": 0,
        "children_rss_peak_kib": int(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss),
        "errors": s["errors"],
        "p50_ms": s["p50_us"] / 1000,
        "p99_ms": s["p99_us"] / 1000,
        "connections": args.connections,
    }
    if s["errors"]:
        result["error"] = f"wrk: {s['errors']} errors (non-2xx or socket)"
    return result


if __name__ == "__main__":
    run(parse_args(__doc__ or "", modes=("ceiling",)), body)
