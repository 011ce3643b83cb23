"""The seed document's from_prefix and from_objects samples, run as scripts, unchanged but for
ENDPOINT, the file paths and the bucket name."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Store

SAMPLES = Path(__file__).parent / "seed_samples"
PREFIX = "EnglistImg/Img/BadImag/Bmp/Sample001/"
FIXTURES = {
    PREFIX + "img001-00001.png": os.urandom(3000),
    PREFIX + "img001-00002.png": os.urandom(70_000),
    PREFIX + "img001-00003.png": os.urandom(1),
    PREFIX + "img001-00004.png": b"",
    PREFIX + "sub/img001-00005.png": os.urandom(12_345),
}
OUTSIDE = "EnglistImg/Img/BadImag/Bmp/Sample002/img002-00001.png"


@pytest.fixture
def seeded(store: Store) -> Store:
    """The fixtures, over oss:// or s3:// (the samples run unchanged on both, but for the
    scheme of their URIs)."""
    for key, body in FIXTURES.items():
        store.put(key, body)
    store.put(OUTSIDE, b"not under the prefix")
    return store


def run_sample(name: str, store: Store, tmp_path: Path) -> list[tuple[str, int, int]]:
    cred = store.write_cred_file(tmp_path / "credentials")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"logLevel": 1, "datasetConfig": {"prefetchConcurrency": 4}}))
    text = (SAMPLES / name).read_text()
    text = re.sub(r'ENDPOINT = ".*"', f'ENDPOINT = "{store.endpoint}"', text)
    text = re.sub(r'CONFIG_PATH = ".*"', f'CONFIG_PATH = "{config}"', text)
    text = re.sub(r'CRED_PATH = ".*"', f'CRED_PATH = "{cred}"', text)
    text = text.replace("oss://ai-testset/", store.uri())
    script = tmp_path / name
    script.write_text(text)
    # The endpoint is an IP, which names no region: the environment supplies it, as a user would.
    env = {**os.environ, **store.region_env}
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) % 3 == 0, done.stdout
    return [(lines[i], int(lines[i + 1]), int(lines[i + 2])) for i in range(0, len(lines), 3)]


def test_from_prefix_sample(seeded: Store, tmp_path: Path) -> None:
    got = run_sample("from_prefix.py", seeded, tmp_path)
    want = sorted(((k, len(v), len(v)) for k, v in FIXTURES.items()), key=lambda t: t[0].encode())
    assert got == want


def test_from_objects_sample(seeded: Store, tmp_path: Path) -> None:
    got = run_sample("from_objects.py", seeded, tmp_path)
    names = [PREFIX + f"img001-0000{i}.png" for i in (1, 2, 3)]
    assert got == [(k, len(FIXTURES[k]), len(FIXTURES[k])) for k in names]
