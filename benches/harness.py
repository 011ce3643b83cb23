"""End-to-end throughput benchmark: this project against its peers, same server, same run.

Generates the workloads into a `bucket/key` tree (cached), starts nginx + the list responder
(:mod:`servers`), then runs every (workload, client, mode) as its own process, interleaved
(A, B, C, A, C, B, ...), `--reps` times: the first rep in the planned order, each later one in
its own seeded shuffle of each workload's runs (a run over large objects depends on what the
run before it freed, so no client may always follow the same one). For each run it records
objects/s and MB/s from the runner's own timing, and CPU seconds and peak RSS of the runner's
whole process tree from the kernel (``wait4``: DataLoader workers are reaped by the runner, so
their time is included) plus a sampled sum of the tree's RSS. Medians, ratios, a markdown
table and a PNG go to ``benches/results/`` and into ``BENCHMARKS.md``.

Run through ``bash benches/run.sh [--quick]``, which prepares the environments.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import itertools
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
from servers import Servers

BENCHES = Path(__file__).resolve().parent
REPO = BENCHES.parent
HOME = Path(os.environ.get("BENCH_HOME", Path.home() / ".cache" / "osstorchconnector-bench"))
BUCKET = "bench"
KIB = 1024
MIB = 1024 * 1024
OFFICIAL_HOST = "oss.bench.localhost"  # the official connector asks for <bucket>.<this>
RESULTS_BEGIN = "<!-- results:begin (written by benches/harness.py) -->"
RESULTS_END = "<!-- results:end -->"
LOAD_AT_START = os.getloadavg()[0]


# --------------------------------------------------------------------------------------------
# Workloads and their data


@dataclass(frozen=True)
class Workload:
    name: str
    prefix: str
    count: int
    size: int
    latency: bool = False
    max_seconds: float = 60.0  # each run stops by itself after this (counted as incomplete)
    map: bool = False  # also run the map-style datasets (DataLoader with shuffle=True)
    tar: bool = False  # the objects are the members of one tar archive, read through its index
    # Repetitions when more than the run's default: a first pass over large objects moves by
    # +-30 % from one run to the next with the host's memory (BENCHMARKS.md, issue 17), and the
    # median of three such runs moved by more than the differences this workload is read for.
    reps: int = 0

    @property
    def label(self) -> str:
        size = f"{self.size // MIB} MiB" if self.size >= MIB else f"{self.size // KIB} KiB"
        lat = " + 20 ms" if self.latency else ""
        what = " in a tar" if self.tar else ""
        return f"{self.count:,} x {size}{what}{lat}"

    @property
    def tar_key(self) -> str:
        return f"{self.prefix}data.tar"


def workloads(quick: bool) -> list[Workload]:
    if quick:
        return [
            Workload("small", "q-small/", 1000, 100 * KIB, max_seconds=15, map=True),
            Workload("medium", "q-medium/", 32, 4 * MIB, max_seconds=15),
            Workload("large", "q-large/", 2, 64 * MIB, max_seconds=15),
            Workload("small-20ms", "q-small/", 1000, 100 * KIB, latency=True, max_seconds=4),
            Workload("tar", "q-tar/", 1000, 100 * KIB, max_seconds=15, tar=True),
        ]
    return [
        Workload("small", "small/", 10_000, 100 * KIB, map=True),
        Workload("medium", "medium/", 256, 4 * MIB),
        Workload("large", "large/", 4, 256 * MIB, reps=7),
        Workload("small-20ms", "small/", 10_000, 100 * KIB, latency=True, max_seconds=10),
        Workload("tar", "tar/", 10_000, 100 * KIB, tar=True),
    ]


def _crc64_fun() -> Any:
    import crcmod

    # CRC-64/XZ (ECMA-182, reflected) as in OSS's x-oss-hash-crc64ecma
    return crcmod.mkCrcFun(  # type: ignore[attr-defined]
        0x142F0E1EBA9EA3693, initCrc=0, xorOut=0xFFFFFFFFFFFFFFFF, rev=True
    )


def ensure_data(root: Path, w: Workload) -> dict[str, int]:
    """Creates `w.count` random objects of `w.size` bytes under `bucket/prefix` unless they are
    there already (for a tar workload: one archive of that many members, and its index);
    returns {key: crc64}, cached in a sidecar file."""
    if w.tar:
        return ensure_tar(root, w)
    directory = root / BUCKET / w.prefix
    sidecar = root.parent / f"crc-{w.prefix.strip('/')}.json"
    names = [f"{i:06d}.bin" for i in range(w.count)]
    if sidecar.exists() and directory.is_dir():
        crcs: dict[str, int] = json.loads(sidecar.read_text())
        present = sorted(p.name for p in directory.iterdir())
        sizes_ok = all((directory / n).stat().st_size == w.size for n in names if n in present)
        if present == names and sizes_ok and len(crcs) == w.count:
            return crcs
    print(f"generating {w.count} x {w.size} bytes under {directory} ...", flush=True)
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    crc64 = _crc64_fun()
    crcs = {}
    chunk = 8 * MIB
    for n in names:
        crc = 0
        with open(directory / n, "wb") as f:
            left = w.size
            while left:
                block = os.urandom(min(chunk, left))
                f.write(block)
                crc = crc64(block, crc)
                left -= len(block)
        crcs[w.prefix + n] = crc
    sidecar.write_text(json.dumps(crcs))
    return crcs


def ensure_tar(root: Path, w: Workload) -> dict[str, int]:
    """A ustar archive of `w.count` random members of `w.size` bytes at `w.tar_key`, and its
    index (official format, written by our generate_tar_archive) at `w.tar_key + ".idx"`."""
    import tarfile

    tar_path = root / BUCKET / w.tar_key
    index_path = tar_path.with_name(tar_path.name + ".idx")
    sidecar = root.parent / f"crc-{w.prefix.strip('/')}.json"
    stamp = {"count": w.count, "size": w.size}
    if sidecar.exists() and tar_path.exists() and index_path.exists():
        known = json.loads(sidecar.read_text())
        if known.get("stamp") == stamp:
            return {k: int(v) for k, v in known["crcs"].items()}
    print(f"generating a tar of {w.count} x {w.size} bytes at {tar_path} ...", flush=True)
    tar_path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar_path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for i in range(w.count):
            info = tarfile.TarInfo(f"{w.prefix}{i:06d}.bin")
            info.size = w.size
            tar.addfile(info, io.BytesIO(os.urandom(w.size)))
    make_index = (
        "import sys; from osstorchconnector import generate_tar_archive as g; "
        "sys.exit(g('', '', '', sys.argv[1], sys.argv[2], '', True))"
    )
    ours = REPO / ".venv" / "bin" / "python"
    subprocess.run([str(ours), "-c", make_index, str(tar_path), str(index_path)], check=True)
    crc64 = _crc64_fun()
    crcs = {}
    for path in (tar_path, index_path):
        crc = 0
        with open(path, "rb") as f:
            while block := f.read(8 * MIB):
                crc = crc64(block, crc)
        crcs[path.relative_to(root / BUCKET).as_posix()] = crc
    sidecar.write_text(json.dumps({"stamp": stamp, "crcs": crcs}))
    return crcs


def write_crc_map(path: Path, crcs: dict[str, int]) -> None:
    """nginx `map $uri` entries for both addressing styles: /bucket/key and /key."""
    with open(path, "w") as f:
        for key, crc in crcs.items():
            f.write(f'"/{BUCKET}/{key}" {crc};\n"/{key}" {crc};\n')


def warm_page_cache(root: Path) -> None:
    """Reads every file under `root`. Done again before every run: this machine pages out cold
    memory on its own (a DAMON `pageout` scheme), page cache included, and a run that found part
    of its objects evicted would pay for the server's disk reads."""
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with open(Path(dirpath, name), "rb") as f:
                while f.read(8 * MIB):
                    pass


# --------------------------------------------------------------------------------------------
# Clients


@dataclass(frozen=True)
class Client:
    name: str  # in tables
    script: str  # benches/clients/<script>
    python: Path
    modes: tuple[str, ...]
    concurrency: int = 0  # written into the OSS config when > 0
    connections: int = 0  # wrk
    processes: int = 1  # fresh_recv
    hold_previous: bool = False  # fresh_recv
    warm_epochs: int = 0  # untimed epochs in the same process before the timed one
    scheme: str = "oss"  # ours: the URIs' scheme, so the protocol (s3: AWS SigV4, S3 XML)


@dataclass
class Env:
    """Files and ports shared by all runs."""

    work: Path
    port: int
    latency_port: int
    hosts_file: Path
    cred_path: Path
    paths_files: dict[str, Path] = field(default_factory=dict)


WARM = "ours 2nd epoch"
# The ceiling of recv() into a new buffer per object (benches/fresh_recv.c), for large objects;
# and the same in the DataLoader's shape (two processes at once), the ceiling of its mode.
FRESH = "C recv, fresh memory"
FRESH_LOADER = "C recv, fresh memory, 2 processes"
# The same, each buffer freed only after the next object is in (as a prefetching reader holds
# the consumer's object while it fetches the next): no object reuses the pages just freed.
FRESH_HELD = "C recv, previous held, 2 processes"
# Objects this large are each a new mapping of their own, whose first touch is the cost that
# bounds a first pass; before every run over them the machine idles COLD_PAUSE_S, so that
# every client starts with the memory the previous one freed handed back to the host (a VM
# reports free pages after a few seconds; see benches/first_touch.py). Without it, a client
# right after one that freed ~1 GiB got that memory warm and ran up to 1.5x faster.
LARGE_OBJECT = 64 * MIB
COLD_PAUSE_S = float(os.environ.get("BENCH_COLD_PAUSE_S", "4"))


def clients(quick: bool, w: Workload) -> list[Client]:
    ours = REPO / ".venv" / "bin" / "python"
    official = HOME / "official" / "bin" / "python"
    peers = HOME / "peers" / "bin" / "python"
    both = ("single", "loader")
    if w.tar:  # s3torchconnector and boto3 have no tar datasets; wrk has no tar index
        return [
            Client("ours", "ours.py", ours, both),
            Client("official", "official.py", official, both),
        ]
    datasets = (*both, "map") if w.map else both
    out = [
        Client("ours", "ours.py", ours, datasets),
        Client("ours (s3)", "ours.py", ours, datasets, scheme="s3"),
        Client("official", "official.py", official, datasets),
        Client("s3torchconnector", "s3torch.py", peers, datasets),
        Client("boto3 16 threads", "boto3_pool.py", peers, ("single",)),
    ]
    if not w.latency:
        # Same client, timed on its second pass over the workload in one process: start-up
        # costs (first touches of memory, connections) apart from the streaming rate.
        out.insert(1, Client(WARM, "ours.py", ours, ("single",), warm_epochs=1))
    if w.latency:
        # The latency target is stated per configured concurrency: show two more.
        out.insert(1, Client("ours c=64", "ours.py", ours, ("single",), concurrency=64))
        out.insert(2, Client("ours c=256", "ours.py", ours, ("single",), concurrency=256))
    conns = (24, 256) if w.latency else (64,) if quick else (64, 256)
    for c in conns:
        out.append(Client(f"wrk c={c}", "wrk.py", peers, ("ceiling",), connections=c))
    if w.size >= LARGE_OBJECT:
        out.append(Client(FRESH, "fresh_recv.py", peers, ("ceiling",), connections=8))
        out.append(
            Client(FRESH_LOADER, "fresh_recv.py", peers, ("ceiling",), connections=8, processes=2)
        )
        out.append(
            Client(
                FRESH_HELD,
                "fresh_recv.py",
                peers,
                ("ceiling",),
                connections=8,
                processes=2,
                hold_previous=True,
            )
        )
    return out


def available(c: Client) -> str | None:
    """Why the client cannot run here, or None."""
    if not c.python.exists():
        return f"{c.python} missing (run benches/run.sh, which creates it)"
    if c.script == "wrk.py" and shutil.which("wrk") is None:
        return "wrk not installed"
    return None


def write_config(env: Env, c: Client, tag: str) -> Path:
    """The connector config (official format) for an OSS client: logs to a file, no audit."""
    cfg: dict[str, Any] = {
        "logLevel": 2,
        "logPath": str(env.work / "logs" / f"{tag}.log"),
        "auditPath": "",
    }
    if c.concurrency:
        cfg["datasetConfig"] = {"prefetchConcurrency": c.concurrency}
    path = env.work / f"config-{tag}.json"
    path.write_text(json.dumps(cfg))
    return path


def command(env: Env, w: Workload, c: Client, mode: str) -> tuple[list[str], dict[str, str]]:
    port = env.latency_port if w.latency else env.port
    script = str(BENCHES / "clients" / c.script)
    args = [
        "--bucket",
        BUCKET,
        "--prefix",
        w.prefix,
        "--mode",
        mode,
        "--max-seconds",
        str(w.max_seconds),
    ]
    environ = dict(os.environ)
    environ.pop("PYTHONPATH", None)
    environ["PYTHONWARNINGS"] = "ignore"
    if mode != "ceiling":
        args += ["--expect", str(w.count)]
    if w.tar:
        args += ["--tar", w.tar_key]
    tag = f"{c.script[:-3]}-{c.concurrency}"
    if c.script == "ours.py":
        args += ["--endpoint", f"http://127.0.0.1:{port}", "--cred-path", str(env.cred_path)]
        args += ["--warm-epochs", str(c.warm_epochs), "--scheme", c.scheme]
        if c.scheme == "s3":
            args += ["--region", "us-east-1"]
        args += [
            "--config-path",
            str(write_config(env, c, tag)),
            "--concurrency",
            str(c.concurrency),
        ]
        return [str(c.python), script, *args], environ
    if c.script == "official.py":
        args += ["--endpoint", f"http://{OFFICIAL_HOST}:{port}", "--cred-path", str(env.cred_path)]
        args += ["--config-path", str(write_config(env, c, tag))]
        # a private mount namespace whose /etc/hosts maps <bucket>.OFFICIAL_HOST to 127.0.0.1
        wrapper = [
            "unshare",
            "--mount",
            "sh",
            "-c",
            f'mount --bind {env.hosts_file} /etc/hosts && exec "$@"',
            "sh",
        ]
        return [*wrapper, str(c.python), script, *args], environ
    args += ["--endpoint", f"http://127.0.0.1:{port}"]
    if c.script == "s3torch.py":
        environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench-secret")
        environ.update(AWS_EC2_METADATA_DISABLED="true", AWS_REGION="us-east-1")
    if c.script in ("wrk.py", "fresh_recv.py"):
        args += [
            "--paths-file",
            str(env.paths_files[w.prefix]),
            "--connections",
            str(c.connections),
            "--processes",
            str(c.processes),
        ]
        if c.hold_previous:
            args.append("--hold-previous")
    if c.script == "wrk.py":
        args[args.index("--max-seconds") + 1] = str(min(w.max_seconds, 5.0))
    return [str(c.python), script, *args], environ


# --------------------------------------------------------------------------------------------
# Running and measuring one process tree


def _tree_rss(pid: int) -> int:
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def measure(cmd: list[str], environ: dict[str, str], timeout: float, log: Path) -> dict[str, Any]:
    """Runs `cmd` in its own session; CPU and ru_maxrss of its tree from wait4; RSS sum sampled."""
    with tempfile.TemporaryFile() as out, open(log, "ab") as err:
        err.write(f"\n$ {' '.join(cmd)}\n".encode())
        err.flush()
        wall = time.perf_counter()
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=err, env=environ, cwd=BENCHES, start_new_session=True
        )
        peak_sum = 0
        stop = threading.Event()

        def sample() -> None:
            # until the runner has printed its result: teardown is not part of the loop
            nonlocal peak_sum
            while not stop.wait(0.05):
                peak_sum = max(peak_sum, _tree_rss(proc.pid))
                if b'"objects"' in os.pread(out.fileno(), 1 << 20, 0):
                    break

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        killer = threading.Timer(timeout, _kill_group, (proc.pid,))
        killer.start()
        try:
            _pid, status, usage = os.wait4(proc.pid, 0)
        except BaseException:  # interrupted (Ctrl-C, SIGTERM): take the client tree down too
            _kill_group(proc.pid)
            proc.wait()
            raise
        finally:
            killer.cancel()
            stop.set()
            sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - wall
        out.seek(0)
        stdout = out.read().decode(errors="replace")
    line = next((ln for ln in reversed(stdout.splitlines()) if ln.startswith("{")), None)
    result: dict[str, Any] = json.loads(line) if line else {}
    if not line:
        result["error"] = f"exit code {proc.returncode}, no result; see {log}"
    elif proc.returncode != 0:
        # the figures were printed before the client tore down: keep them, report the crash
        result["teardown"] = f"exit code {proc.returncode} after the loop finished"
    cpu = usage.ru_utime + usage.ru_stime
    result.setdefault("loop_cpu_s", cpu - result.get("cpu_before_loop_s", 0.0))
    loop_rss = max(result.get("rss_peak_kib", 0), result.get("children_rss_peak_kib", 0))
    result.update(
        cpu_s=cpu,  # whole tree, start-up and teardown included (kernel, wait4)
        exit_maxrss_kib=usage.ru_maxrss,  # ditto
        maxrss_kib=loop_rss or usage.ru_maxrss,
        rss_sum_peak_kib=peak_sum // 1024,
        wall_s=wall,
    )
    return result


# --------------------------------------------------------------------------------------------
# Aggregation


@dataclass
class Row:
    workload: str
    label: str
    client: str
    mode: str
    runs: int
    ok_runs: int
    objects_s: float
    mb_s: float
    mb_s_min: float
    mb_s_max: float
    cpu_s_per_gb: float
    total_cpu_s: float
    maxrss_mib: float
    rss_over_baseline_mib: float
    rss_sum_mib: float
    complete: bool
    note: str = ""
    # fresh_recv in the DataLoader's shape: its MB/s with the start of an empty DataLoader of
    # as many workers added to its seconds (the DataLoader mode's clock counts that start)
    mb_s_with_loader_start: float = float("nan")


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def aggregate(runs: list[dict[str, Any]], wls: list[Workload]) -> list[Row]:
    labels = {w.name: w.label for w in wls}
    keys: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in runs:
        keys.setdefault((r["workload"], r["client"], r["mode"]), []).append(r)
    rows = []
    for (wl, client, mode), rs in keys.items():
        good = [r for r in rs if not r.get("error") and r.get("seconds")]
        problems = {str(r["error"]) for r in rs if r.get("error")}
        problems |= {
            f"{sum(1 for x in rs if x.get('teardown'))} run(s): {r['teardown']}"
            for r in rs
            if r.get("teardown")
        }
        note = "; ".join(sorted(problems))[:240]
        rows.append(
            Row(
                workload=wl,
                label=labels.get(wl, wl),
                client=client,
                mode=mode,
                runs=len(rs),
                ok_runs=len(good),
                objects_s=_median([r["objects"] / r["seconds"] for r in good]),
                mb_s=_median([r["bytes"] / r["seconds"] / 1e6 for r in good]),
                mb_s_min=min((r["bytes"] / r["seconds"] / 1e6 for r in good), default=float("nan")),
                mb_s_max=max((r["bytes"] / r["seconds"] / 1e6 for r in good), default=float("nan")),
                cpu_s_per_gb=_median(
                    [r["loop_cpu_s"] / (r["bytes"] / 1e9) for r in good if r["bytes"]]
                ),
                total_cpu_s=_median([r["cpu_s"] for r in good]),
                maxrss_mib=_median([r["maxrss_kib"] / 1024 for r in good]),
                rss_over_baseline_mib=_median(
                    [(r["maxrss_kib"] - r["rss_baseline_kib"]) / 1024 for r in good]
                    if mode != "ceiling"
                    else []
                ),
                rss_sum_mib=_median([r["rss_sum_peak_kib"] / 1024 for r in good]),
                complete=all(r.get("complete", False) for r in good) and bool(good),
                note=note,
                mb_s_with_loader_start=_median(
                    [
                        r["bytes"] / (r["seconds"] + r["loader_start_s"]) / 1e6
                        for r in good
                        if r.get("loader_start_s")
                    ]
                ),
            )
        )
    return rows


def _fmt(x: float, digits: int = 0) -> str:
    if x != x:  # NaN
        return "-"
    return f"{x:,.{digits}f}"


def ratio(a: float, b: float) -> str:
    if a != a or b != b or not b:
        return "-"
    return f"{a / b:.2f}x"


def share(a: float, ceiling: float) -> str:
    if a != a or ceiling != ceiling or not ceiling:
        return "-"
    return f"{100 * a / ceiling:.0f} %"


def ratios(rows: list[Row]) -> list[dict[str, str]]:
    """Ours against each peer and against wrk, per (workload, mode), from the same run."""
    by = {(r.workload, r.client, r.mode): r for r in rows}
    out = []
    for r in rows:
        if not r.client.startswith("ours") or r.mode == "ceiling":
            continue
        entry = {"workload": r.label, "mode": r.mode, "client": r.client}
        # A warmed-up process against the peers' cold ones would flatter ours: wrk only.
        cold = r.client != WARM
        for peer in ("official", "s3torchconnector", "boto3 16 threads"):
            p = by.get((r.workload, peer, r.mode)) if cold else None
            entry[f"vs {peer}"] = ratio(r.objects_s, p.objects_s) if p else "-"
        off = by.get((r.workload, "official", r.mode)) if cold else None
        entry["CPU/GB vs official"] = ratio(r.cpu_s_per_gb, off.cpu_s_per_gb) if off else "-"
        wrk = max(
            (
                x.mb_s
                for x in rows
                if x.workload == r.workload and x.mode == "ceiling" and x.client.startswith("wrk")
            ),
            default=float("nan"),
        )
        entry["% of wrk ceiling"] = share(r.mb_s, wrk)
        # Each mode against the ceiling of its shape: one process, or two at once.
        fresh = by.get((r.workload, FRESH_LOADER if r.mode == "loader" else FRESH, "ceiling"))
        entry["% of fresh-memory ceiling"] = share(r.mb_s, fresh.mb_s) if fresh else "-"
        started = fresh.mb_s_with_loader_start if fresh and r.mode == "loader" else float("nan")
        entry["% of fresh-memory ceiling + DataLoader start"] = share(r.mb_s, started)
        held = by.get((r.workload, FRESH_HELD, "ceiling")) if r.mode == "loader" else None
        entry["% of previous-held ceiling"] = share(r.mb_s, held.mb_s) if held else "-"
        out.append(entry)
    return out


def reordered(
    steps: list[tuple[Workload, Client, str]], rep: int
) -> list[tuple[Workload, Client, str]]:
    """The steps of each workload, workloads in order: as planned in rep 0, then shuffled with
    the rep as the seed (the same order for the same rep in every run)."""
    out: list[tuple[Workload, Client, str]] = []
    for _, group in itertools.groupby(steps, key=lambda s: s[0].name):
        runs = list(group)
        if rep:
            random.Random(rep).shuffle(runs)
        out += runs
    return out


def _counted(rows: list[Row]) -> str:
    """How many runs each median is of: one number, or the default and the exceptions."""
    per_workload = {r.label: r.runs for r in rows}
    common = statistics.mode(per_workload.values()) if per_workload else 0
    more = [f"{n} for {label}" for label, n in per_workload.items() if n != common]
    return f"{common}" + (f" ({', '.join(more)})" if more else "")


def markdown(rows: list[Row]) -> str:
    head = (
        "| workload | mode | client | objects/s | MB/s | MB/s min-max | CPU s/GB | peak RSS MiB | "
        "RSS - baseline MiB | tree RSS MiB | runs |\n"
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n"
    )
    lines = []
    for r in rows:
        runs = f"{r.ok_runs}/{r.runs}" + ("" if r.complete or not r.ok_runs else " (capped)")
        if r.note:
            runs += f" — {r.note}"
        lines.append(
            f"| {r.label} | {r.mode} | {r.client} | {_fmt(r.objects_s)} | {_fmt(r.mb_s)} | "
            f"{_fmt(r.mb_s_min)}-{_fmt(r.mb_s_max)} | "
            f"{_fmt(r.cpu_s_per_gb, 2)} | {_fmt(r.maxrss_mib)} | {_fmt(r.rss_over_baseline_mib)} | "
            f"{_fmt(r.rss_sum_mib)} | {runs} |"
        )
    rat = ratios(rows)
    if rat:
        cols = list(rat[0].keys())
        rtable = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
        rtable += "\n".join("| " + " | ".join(e[c] for c in cols) + " |" for e in rat)
    else:
        rtable = "(no ratios: our client did not run)"
    return (
        f"Medians of {_counted(rows)} interleaved run(s) each.\n\n{head}"
        + "\n".join(lines)
        + "\n\nRatios of our client's medians to each peer's (objects/s, same workload and "
        "mode, same run; > 1 means ours is faster), its CPU per GB relative to the official "
        "connector's (< 1 means ours uses less), and its MB/s as a share of the best wrk "
        "ceiling of that workload and, for large objects, of the fresh-memory ceiling (recv() "
        "into a new buffer per object, benches/fresh_recv.c; for the DataLoader mode, two such "
        "processes at once, also with the start of an empty DataLoader of 2 workers added to "
        "its clock, and with each buffer freed only after the next object is in):\n\n"
        + rtable
        + "\n"
    )


def plot(rows: list[Row], wls: list[Workload], path: Path) -> None:
    """Grouped bars of MB/s per workload, one panel per mode; the hatched bar is the best wrk
    figure of the workload (the server's ceiling). Colours are fixed per client."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    ceiling_name = "wrk (best c)"
    names: list[str] = []
    for r in rows:
        if r.mode != "ceiling" and r.client not in names:
            names.append(r.client)
    colours = {c: plt.get_cmap("tab10")(i % 10) for i, c in enumerate([*names, ceiling_name])}

    def value(w: Workload, client: str, mode: str) -> float:
        if client == ceiling_name:
            hits = [r.mb_s for r in rows if r.workload == w.name and r.mode == "ceiling"]
        else:
            hits = [
                r.mb_s
                for r in rows
                if r.workload == w.name and r.client == client and r.mode == mode
            ]
        hits = [h for h in hits if h == h]
        return max(hits, default=0.0)

    modes = [("single", "one process"), ("loader", "DataLoader, 2 workers, batch 256")]
    fig, axes = plt.subplots(1, 2, figsize=(15, 5.5), sharey=True)
    for ax, (mode, title) in zip(axes, modes, strict=True):
        shown = [c for c in names if any(r.client == c and r.mode == mode for r in rows)]
        shown.append(ceiling_name)
        width = 0.84 / len(shown)
        for i, c in enumerate(shown):
            ys = [value(w, c, mode) for w in wls]
            xs = [j + (i - (len(shown) - 1) / 2) * width for j in range(len(wls))]
            hatch = "//" if c == ceiling_name else None
            ax.bar(xs, ys, width, color=colours[c], hatch=hatch, edgecolor="black", linewidth=0.3)
        ax.set_xticks(range(len(wls)), [w.label for w in wls], fontsize=8)
        ax.set_yscale("log")
        ax.set_title(title)
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[0].set_ylabel("MB/s read into Python (log scale)")
    handles = [
        Patch(facecolor=colours[c], edgecolor="black", hatch="//" if c == ceiling_name else None)
        for c in [*names, ceiling_name]
    ]
    fig.legend(handles, [*names, ceiling_name], loc="center right", fontsize=8)
    fig.suptitle("osstorchconnector benchmark: nginx on 127.0.0.1, medians")
    fig.tight_layout(rect=(0, 0, 0.88, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# Machine facts, output


def _version(python: Path, dist: str) -> str:
    if not python.exists():
        return "not installed"
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    return out.stdout.strip() or "not installed"


def copy_bandwidth() -> str:
    """One thread copying 256 MiB into memory it has written before, and into fresh memory (a new
    `bytes`, as `read()` of a large object returns): page faults and clearing make the second
    several times slower here, and every client pays it for objects read whole."""
    size = 256 * MIB
    src, dst = bytearray(b"x" * size), bytearray(size)
    dst[:] = src
    t = time.perf_counter()
    for _ in range(4):
        dst[:] = src
    warm = 4 * size / (time.perf_counter() - t) / 1e9
    t = time.perf_counter()
    for _ in range(4):
        fresh = bytes(src)
        del fresh
    cold = 4 * size / (time.perf_counter() - t) / 1e9
    return f"{warm:.1f} GB/s into reused memory, {cold:.1f} GB/s into fresh memory"


def machine_facts(nginx_workers: int) -> dict[str, str]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ours_py = REPO / ".venv" / "bin" / "python"
    peers = HOME / "peers" / "bin" / "python"
    commit = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True
    ).stdout.strip()
    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "memory": f"{psutil.virtual_memory().total / 2**30:.0f} GiB",
        "copying 256 MiB, one thread": copy_bandwidth(),
        "kernel": platform.release(),
        "load average at start (1 min)": f"{LOAD_AT_START:.2f}",
        "python": platform.python_version(),
        "server": f"{nginx.replace('nginx version: ', '')} ({nginx_workers} worker(s)), "
        "ListObjects from a Python responder",
        "wrk": wrk.split(" Copyright")[0].strip() or "missing",
        "ours": f"osstorchconnector {commit} (this repository)",
        "official": "osstorchconnector "
        + _version(HOME / "official/bin/python", "osstorchconnector"),
        "s3torchconnector": _version(peers, "s3torchconnector"),
        "boto3": _version(peers, "boto3"),
        "torch": _version(ours_py, "torch"),
    }


def update_benchmarks_md(text: str) -> None:
    path = REPO / "BENCHMARKS.md"
    doc = path.read_text() if path.exists() else f"# Benchmarks\n\n{RESULTS_BEGIN}\n{RESULTS_END}\n"
    if RESULTS_BEGIN not in doc or RESULTS_END not in doc:
        doc += f"\n{RESULTS_BEGIN}\n{RESULTS_END}\n"
    before, rest = doc.split(RESULTS_BEGIN, 1)
    _old, after = rest.split(RESULTS_END, 1)
    path.write_text(f"{before}{RESULTS_BEGIN}\n{text}\n{RESULTS_END}{after}")


def results_section(rows: list[Row], facts: dict[str, str], cmdline: str) -> str:
    fact_lines = "\n".join(f"- {k}: {v}" for k, v in facts.items())
    return (
        f"## Latest results\n\nCommand: `{cmdline}`\n\n{fact_lines}\n\n"
        f"{markdown(rows)}\n![throughput](benches/results/throughput.png)\n"
    )


# --------------------------------------------------------------------------------------------
# Main


def render(path: Path, write_md: bool) -> None:
    """Redoes the medians, table, plot and (for a full run) BENCHMARKS.md from saved runs."""
    payload = json.loads(path.read_text())
    wls = [Workload(**w) for w in payload["workloads"]]
    rows = aggregate(payload["runs"], wls)
    quick = "--quick" in payload.get("argv", [])
    print(markdown(rows))
    plot(rows, wls, BENCHES / "results" / ("throughput-quick.png" if quick else "throughput.png"))
    if write_md and not quick:
        update_benchmarks_md(results_section(rows, payload["facts"], payload["command"]))


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def plan(wls: list[Workload], quick: bool) -> Iterator[tuple[Workload, Client, str]]:
    for w in wls:
        for c in clients(quick, w):
            for mode in c.modes:
                yield w, c, mode


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small workloads, one repetition")
    p.add_argument(
        "--reps",
        type=int,
        default=0,
        help="repetitions of every workload (default 3, large objects 7; quick: 1)",
    )
    p.add_argument("--nginx-workers", type=int, default=1)
    p.add_argument("--delay-ms", type=float, default=20.0)
    p.add_argument("--no-crc", action="store_true", help="do not send x-oss-hash-crc64ecma")
    p.add_argument(
        "--only",
        default="",
        help='comma-separated client names to run (e.g. "ours,C recv, fresh memory")',
    )
    p.add_argument("--workloads", default="", help="comma-separated workload names to run")
    p.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    p.add_argument(
        "--render",
        type=Path,
        default=None,
        help="only redo the table, plot and BENCHMARKS.md from a results JSON (no runs)",
    )
    a = p.parse_args()
    if a.render is not None:
        render(a.render, write_md=not a.no_write)
        return
    signal.signal(signal.SIGTERM, _terminate)  # unwind: stop the servers and the running client
    reps = a.reps or (1 if a.quick else 3)
    wls = workloads(a.quick)
    if a.workloads:
        wanted = set(a.workloads.split(","))
        wls = [w for w in wls if w.name in wanted]

    def reps_of(w: Workload) -> int:
        return a.reps or max(reps, w.reps)

    rounds = max(map(reps_of, wls), default=reps)
    # A comma followed by a space belongs to a name ("C recv, fresh memory").
    only = set(re.split(r",(?! )", a.only)) if a.only else set()

    root = HOME / "data" / "root"
    work = HOME / "work"
    if work.exists():
        shutil.rmtree(work)
    (work / "logs").mkdir(parents=True)
    crcs: dict[str, int] = {}
    for w in wls:
        crcs.update(ensure_data(root, w))
    crc_map = None
    if not a.no_crc:
        crc_map = work / "crc.map"
        write_crc_map(crc_map, crcs)
    warm_page_cache(root)

    hosts = work / "hosts"
    hosts.write_text(f"127.0.0.1 localhost\n127.0.0.1 {BUCKET}.{OFFICIAL_HOST}\n")
    cred = work / "cred.json"
    cred.write_text(json.dumps({"AccessKeyId": "bench", "AccessKeySecret": "bench-secret"}))

    steps = [s for s in plan(wls, a.quick) if not only or s[1].name in only]
    runs: list[dict[str, Any]] = []
    started = time.monotonic()
    with Servers(root, work / "nginx", crc_map, a.nginx_workers, a.delay_ms) as srv:
        env = Env(work, srv.port, srv.latency_port, hosts, cred)
        for w in wls:
            if w.tar:
                continue
            paths = work / f"paths-{w.prefix.strip('/')}.txt"
            paths.write_text("".join(f"/{BUCKET}/{w.prefix}{i:06d}.bin\n" for i in range(w.count)))
            env.paths_files[w.prefix] = paths
        print(
            f"nginx on 127.0.0.1:{srv.port} (latency {a.delay_ms:g} ms on :{srv.latency_port}); "
            f"{len(steps)} runs x {reps}" + (f" (some x {rounds})" if rounds > reps else ""),
            flush=True,
        )
        for rep in range(rounds):
            due = [s for s in steps if rep < reps_of(s[0])]
            for w, c, mode in reordered(due, rep):
                record: dict[str, Any] = {
                    "workload": w.name,
                    "client": c.name,
                    "mode": mode,
                    "rep": rep,
                }
                why = available(c)
                if why:
                    record["error"] = why
                else:
                    cmd, environ = command(env, w, c, mode)
                    warm_page_cache(root / BUCKET / w.prefix)
                    if w.size >= LARGE_OBJECT:
                        time.sleep(COLD_PAUSE_S)
                    log = work / "logs" / f"{c.script[:-3]}.stderr"
                    record.update(measure(cmd, environ, w.max_seconds + 120, log))
                runs.append(record)
                secs = record.get("seconds") or 0
                rate = record.get("objects", 0) / secs if secs else 0.0
                mbs = record.get("bytes", 0) / secs / 1e6 if secs else 0.0
                status = record.get("error", "")
                print(
                    f"[{time.monotonic() - started:6.0f}s] rep {rep + 1}/{rounds} {w.name:<11} "
                    f"{c.name:<17} {mode:<8} {rate:9.0f} obj/s {mbs:8.0f} MB/s "
                    f"cpu {record.get('cpu_s', 0):5.1f}s {status}",
                    flush=True,
                )

    rows = aggregate(runs, wls)
    facts = machine_facts(a.nginx_workers)
    cmdline = "bash benches/run.sh" + (" --quick" if a.quick else "")
    results = BENCHES / "results"
    results.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    payload = {
        "time": stamp,
        "command": cmdline,
        "argv": sys.argv[1:],
        "facts": facts,
        "workloads": [asdict(w) for w in wls],
        "runs": runs,
        "medians": [asdict(r) for r in rows],
        "ratios": ratios(rows),
    }
    # Only a complete, unrestricted run replaces the published figures; quick and partial runs
    # (smoke tests, A/B checks) land in git-ignored files of their own.
    publish = not (a.quick or a.no_write or only or a.workloads)
    kind = "full" if publish else ("quick" if a.quick else "partial")
    # Earlier full runs live in git history, not as files beside the latest.
    written = [results / f"latest-{kind}.json"]
    for path in written:
        path.write_text(json.dumps(payload, indent=1))
    print("\n" + markdown(rows))
    png = results / ("throughput.png" if publish else f"throughput-{kind}.png")
    plot(rows, wls, png)
    written.append(png)
    if publish:
        update_benchmarks_md(results_section(rows, facts, cmdline))
        written.append(REPO / "BENCHMARKS.md")
    print("wrote " + ", ".join(str(p.relative_to(REPO)) for p in written))


if __name__ == "__main__":
    main()
