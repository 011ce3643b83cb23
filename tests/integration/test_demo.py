"""The README's first command runs: the demo starts the server, uploads, streams and reports."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("PIL")
pytest.importorskip("tqdm")
DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.py"


def test_demo_runs_and_reports_throughput() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(DEMO),
            *("--objects", "40", "--size-kb", "20", "--batch-size", "8", "--ckpt-mb", "24"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    rate = r": 40 objects, [\d.]+ MB in [\d.]+ s -> [\d,]+ objects/s, [\d,.]+ MB/s \(local Python"
    for label in (
        r"\(a\) from_prefix, raw read, one process",
        r"\(b\) DataLoader, decode \+ resize/crop/normalize, 2 workers",
    ):
        assert any(re.match(label + rate, line) for line in lines), done.stdout
    assert "(c) from_manifest_file (local): 40 objects" in done.stdout
    assert "first batch (8, 3, 224, 224), labels [0, 1, 2, 3, 4, 5, 6, 7]" in done.stdout, (
        done.stdout
    )
    checkpoint = r"\(e\) OssCheckpoint 25 MB: torch.save [\d,]+ MB/s, torch.load [\d,]+ MB/s"
    assert any(re.match(checkpoint, line) for line in lines), done.stdout


def test_demo_rejects_bad_flags() -> None:
    done = subprocess.run(
        [sys.executable, str(DEMO), "--objects", "0"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and "--objects" in done.stderr
