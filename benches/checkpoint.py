"""Checkpoint benchmark: save and load of one state dict (2 GiB by default) through ours, the
official OssCheckpoint, s3torchconnector's S3Checkpoint and boto3, same server, same run.
With ``--dcp``: torch.distributed.checkpoint save and load of a 2 GiB DTensor-sharded state
over 2 ranks (`clients/dcp.py`) through ours, the official OssDCPFileSystem and
s3torchconnector's S3StorageWriter/Reader; the peak is that of the larger rank.

Every save and every load is its own fresh process (`clients/ckpt.py`), interleaved over the
clients, `--reps` times; the table shows medians. The server is the harness's nginx with its
write port (:mod:`servers`): bodies are received into memory and dropped, completion assembles
nothing, so a save measures the client. Loads read a state dict written once by `torch.save`
into the tree (nginx sends its CRC-64, so the clients that check it pay for that). The server's
ceilings are measured in the same run with wrk: PUTs of 16 MiB bodies and GETs of 16 MiB ranges
of the checkpoint, 8 connections.

Run through ``bash benches/run.sh --checkpoint [--dcp] [--reps N] [--tensors N --tensor-mib M]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness import (
    BUCKET,
    HOME,
    MIB,
    OFFICIAL_HOST,
    REPO,
    _crc64_fun,
    machine_facts,
    warm_page_cache,
    write_crc_map,
)
from servers import Servers

BENCHES = Path(__file__).resolve().parent
KEY = "ckpt/state.pt"
DCP_PREFIX = "dcp/ckpt"
PYTHONS = {
    "ours": REPO / ".venv" / "bin" / "python",
    "official": HOME / "official" / "bin" / "python",
    "s3torchconnector": HOME / "peers" / "bin" / "python",
    "boto3": HOME / "peers" / "bin" / "python",
}
CLIENT_ARG = {
    "ours": "ours",
    "official": "official",
    "s3torchconnector": "s3torch",
    "boto3": "boto3",
}


def ensure_checkpoint(root: Path, a: argparse.Namespace) -> dict[str, int]:
    """The objects the loads read, written once (cached): ``{key: CRC-64}``. A state dict
    written by torch.save, or with ``--dcp`` a checkpoint written by torch's FileSystemWriter
    from 2 ranks (the layout every DCP client reads)."""
    top = root / BUCKET / (DCP_PREFIX if a.dcp else KEY)
    stamp = top.parent / f"{top.name}.json"
    want = {"tensors": a.tensors, "tensor_mib": a.tensor_mib}
    if top.exists() and stamp.exists():
        known = json.loads(stamp.read_text())
        if {k: known.get(k) for k in want} == want and "crcs" in known:
            return {k: int(v) for k, v in known["crcs"].items()}
    print(f"writing the checkpoint to load: {a.tensors} x {a.tensor_mib} MiB ...", flush=True)
    if a.dcp:
        shutil.rmtree(top, ignore_errors=True)
    top.parent.mkdir(parents=True, exist_ok=True)
    sizes = ["--tensors", str(a.tensors), "--tensor-mib", str(a.tensor_mib)]
    if a.dcp:
        script = BENCHES / "clients" / "dcp.py"
        args = ["--client", "local", "--op", "prepare", "--path", str(top), *sizes]
    else:
        script = BENCHES / "clients" / "ckpt.py"
        args = ["--op", "prepare", "--path", str(top), *sizes]
    subprocess.run([str(PYTHONS["ours"]), str(script), *args], check=True)
    files = sorted(top.iterdir()) if a.dcp else [top]
    crc64, crcs = _crc64_fun(), {}
    for path in files:
        crc = 0
        with open(path, "rb") as f:
            while block := f.read(8 * MIB):
                crc = crc64(block, crc)
        crcs[path.relative_to(root / BUCKET).as_posix()] = crc
    stamp.write_text(json.dumps({**want, "crcs": crcs}))
    return crcs


def wrk_ceiling(work: Path, url: str, put: bool) -> float:
    """MB/s of 16 MiB PUT bodies (put) or 16 MiB range GETs that nginx serves wrk, c=8, 5 s."""
    script = work / ("put.lua" if put else "get.lua")
    if put:
        script.write_text('wrk.method = "PUT"\nwrk.body = string.rep("a", 16 * 1024 * 1024)\n')
    else:
        script.write_text('wrk.headers["Range"] = "bytes=0-16777215"\n')
    cmd = ["wrk", "-t2", "-c8", "-d5s", "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("Requests/sec:"))
    return float(line.split()[1]) * 16 * MIB / 1e6


def run_one(
    client: str, op: str, endpoint: str, work: Path, args: argparse.Namespace
) -> dict[str, Any]:
    saved = f"saved/{client.replace(' ', '-')}"
    if args.dcp:
        cmd = [str(PYTHONS[client]), str(BENCHES / "clients" / "dcp.py")]
        cmd += ["--prefix", DCP_PREFIX if op == "load" else f"{saved}-dcp"]
    else:
        cmd = [str(PYTHONS[client]), str(BENCHES / "clients" / "ckpt.py")]
        cmd += ["--key", KEY if op == "load" else f"{saved}.pt"]
    cmd += ["--client", CLIENT_ARG[client], "--op", op, "--bucket", BUCKET]
    cmd += ["--tensors", str(args.tensors), "--tensor-mib", str(args.tensor_mib)]
    environ = dict(os.environ)
    environ.pop("PYTHONPATH", None)
    environ["PYTHONWARNINGS"] = "ignore"
    if client in ("ours", "official"):
        config = work / "config.json"
        cmd += ["--cred-path", str(work / "cred.json"), "--config-path", str(config)]
    if client == "official":
        # virtual-hosted only: a private /etc/hosts maps <bucket>.OFFICIAL_HOST to 127.0.0.1
        endpoint = endpoint.replace("127.0.0.1", OFFICIAL_HOST)
        mount = f'mount --bind {work / "hosts"} /etc/hosts && exec "$@"'
        cmd = ["unshare", "--mount", "sh", "-c", mount, "sh", *cmd]
    if client in ("s3torchconnector", "boto3"):
        environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench-secret")
        environ.update(AWS_EC2_METADATA_DISABLED="true", AWS_REGION="us-east-1")
        # boto3 >= 1.36 would otherwise send every body aws-chunked with a CRC32 trailer
        environ["AWS_REQUEST_CHECKSUM_CALCULATION"] = "when_required"
    cmd += ["--endpoint", endpoint]
    log = work / "logs" / f"{CLIENT_ARG[client]}-{op}{'-dcp' if args.dcp else ''}.stderr"
    with open(log, "ab") as err:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, env=environ, timeout=900)
    line = next(
        (ln for ln in reversed(proc.stdout.decode().splitlines()) if ln.startswith("{")), ""
    )
    if proc.returncode != 0 or not line:
        return {"error": f"exit code {proc.returncode}; see {log}"}
    result: dict[str, Any] = json.loads(line)
    return result


def median_of(runs: list[dict[str, Any]], client: str, op: str) -> dict[str, float] | None:
    ok = [r for r in runs if r["client"] == client and r["op"] == op and "error" not in r]
    if not ok:
        return None
    return {
        "mb_s": statistics.median(r["bytes"] / r["seconds"] / 1e6 for r in ok),
        "cpu_s_gb": statistics.median(r["cpu_s"] / (r["bytes"] / 1e9) for r in ok),
        "peak_mib": statistics.median(
            r.get("peak_kib", r.get("hwm_kib", 0) - r.get("rss_before_kib", 0)) / 1024 for r in ok
        ),
        "n": len(ok),
    }


def table(runs: list[dict[str, Any]], clients: list[str], ceilings: dict[str, float]) -> str:
    head = (
        "| client | save MB/s | save CPU s/GB | save peak over before, MiB "
        "| load MB/s | load CPU s/GB | load peak over before, MiB | save / official "
        "| load / official |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    med = {(c, op): median_of(runs, c, op) for c in clients for op in ("save", "load")}
    off = {op: med.get(("official", op)) for op in ("save", "load")}
    lines = []
    for c in clients:
        cells = [c]
        for op in ("save", "load"):
            m = med[(c, op)]
            if m is None:
                cells += ["failed", "", ""]
                continue
            cells += [f"{m['mb_s']:,.0f}", f"{m['cpu_s_gb']:.2f}", f"{m['peak_mib']:,.0f}"]
        for op in ("save", "load"):
            m, o = med[(c, op)], off[op]
            cells.append(f"{m['mb_s'] / o['mb_s']:.2f}x" if m and o else "")
        lines.append("| " + " | ".join(cells) + " |")
    ceiling = (
        f"| server ceiling (wrk, c=8, 16 MiB) | {ceilings['put']:,.0f} | | "
        f"| {ceilings['get']:,.0f} | | | | |"
    )
    return head + "\n".join(lines) + "\n" + ceiling + "\n"


def update_benchmarks_md(text: str, dcp: bool) -> None:
    name = "dcp" if dcp else "checkpoint"
    begin = f"<!-- {name}:begin (written by benches/checkpoint.py) -->"
    end = f"<!-- {name}:end -->"
    path = REPO / "BENCHMARKS.md"
    doc = path.read_text()
    if begin not in doc or end not in doc:
        doc += f"\n{begin}\n{end}\n"
    before, rest = doc.split(begin, 1)
    _old, after = rest.split(end, 1)
    path.write_text(f"{before}{begin}\n{text}\n{end}{after}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dcp", action="store_true", help="DCP over 2 ranks instead of torch.save")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--tensors", type=int, default=0, help="default 64 (16 with --dcp)")
    p.add_argument("--tensor-mib", type=int, default=0, help="default 32 (128 with --dcp)")
    p.add_argument("--only", default="", help="comma-separated clients to run")
    p.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    a = p.parse_args()
    a.tensors = a.tensors or (16 if a.dcp else 64)
    a.tensor_mib = a.tensor_mib or (128 if a.dcp else 32)
    peers = [c for c in PYTHONS if not (a.dcp and c == "boto3")]  # boto3 has no DCP
    clients = [c for c in peers if not a.only or c in a.only.split(",")]

    root = HOME / "data" / "ckpt-root"
    work = HOME / "work-ckpt"
    (work / "logs").mkdir(parents=True, exist_ok=True)
    crcs = ensure_checkpoint(root, a)
    crc_map = work / "crc.map"
    write_crc_map(crc_map, crcs)
    loaded = root / BUCKET / (DCP_PREFIX if a.dcp else "ckpt")
    (work / "hosts").write_text(f"127.0.0.1 localhost\n127.0.0.1 {BUCKET}.{OFFICIAL_HOST}\n")
    cred = {"AccessKeyId": "bench", "AccessKeySecret": "bench-secret"}
    (work / "cred.json").write_text(json.dumps(cred))
    config = {"logLevel": 2, "logPath": str(work / "logs" / "connector.log"), "auditPath": ""}
    (work / "config.json").write_text(json.dumps(config))

    runs: list[dict[str, Any]] = []
    started = time.monotonic()
    with Servers(root, work / "nginx", crc_map, writes=True) as srv:
        endpoint = f"http://127.0.0.1:{srv.write_port}"
        warm_page_cache(loaded)
        ceilings = {
            "put": wrk_ceiling(work, f"{endpoint}/{BUCKET}/ceiling?partNumber=1&uploadId=w", True),
            "get": wrk_ceiling(work, f"{endpoint}/{BUCKET}/{max(crcs)}", False),
        }
        print(f"server ceilings: PUT {ceilings['put']:,.0f} MB/s, GET {ceilings['get']:,.0f} MB/s")
        for rep in range(a.reps):
            for op in ("save", "load"):
                for client in clients:
                    if op == "load":
                        warm_page_cache(loaded)
                    record = {"client": client, "op": op, "rep": rep}
                    record.update(run_one(client, op, endpoint, work, a))
                    runs.append(record)
                    secs = record.get("seconds") or 0
                    mbs = record.get("bytes", 0) / secs / 1e6 if secs else 0.0
                    print(
                        f"[{time.monotonic() - started:5.0f}s] rep {rep + 1}/{a.reps} {op} "
                        f"{client:<17} {mbs:7.0f} MB/s cpu {record.get('cpu_s', 0):5.1f}s "
                        f"{record.get('error', '')}",
                        flush=True,
                    )

    size_gib = a.tensors * a.tensor_mib / 1024
    facts = machine_facts(1)
    facts["server"] = (
        f"{facts['server']}; write port: bodies received into memory and dropped, "
        "completion by a Python responder (nothing assembled)"
    )
    cmdline = "bash benches/run.sh --checkpoint" + (" --dcp" if a.dcp else "")
    cmdline += f" --reps {a.reps}" if a.reps != 3 else ""
    what = "DCP results (2 ranks, gloo, DTensor sharded by rows)" if a.dcp else "checkpoint results"
    text = (
        f"### Latest {what}\n\nCommand: `{cmdline}`; state dict {a.tensors} x "
        f"{a.tensor_mib} MiB float32 tensors ({size_gib:g} GiB), medians of {a.reps}.\n\n"
        + "\n".join(f"- {k}: {v}" for k, v in facts.items())
        + "\n\n"
        + table(runs, clients, ceilings)
    )
    print("\n" + text)
    results = BENCHES / "results"
    results.mkdir(exist_ok=True)
    payload = {"time": dt.datetime.now(dt.UTC).isoformat(), "argv": sys.argv[1:], "runs": runs}
    payload["ceilings"] = ceilings
    # only a full run replaces the published figures; others land in a git-ignored file
    publish = not (a.no_write or a.only)
    kind = "dcp" if a.dcp else "checkpoint"
    name = f"{kind}-latest.json" if publish else f"{kind}-partial.json"
    (results / name).write_text(json.dumps(payload, indent=1))
    if publish:
        update_benchmarks_md(text, a.dcp)


if __name__ == "__main__":
    main()
