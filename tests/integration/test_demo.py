"""The README's first command runs: the demo starts the server, uploads, streams and reports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.py"


def test_demo_runs_and_reports_throughput() -> None:
    done = subprocess.run(
        [sys.executable, str(DEMO), "--objects", "40", "--batch-size", "8"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "stream, one process: 40 objects" in out
    assert "DataLoader (decode + resize/crop/normalize, 2 workers): 40 objects" in out
    assert out.count("objects/s") == 2 and out.count("MB/s") == 2
    assert "manifest: first batch (8, 3, 224, 224), labels [0, 1, 2, 3, 4, 5, 6, 7]" in out
