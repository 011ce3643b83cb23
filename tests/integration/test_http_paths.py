"""Both HTTP stacks over real servers: our own HTTP/1.1 path (the default for http://
endpoints) and reqwest (HTTPS, proxies, or OSSTORCHCONNECTOR_HTTP=reqwest) read the same
objects, of every size class the pipeline treats differently, to the same bytes as the
independent client wrote them."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Store

MIB = 1024 * 1024

# Empty, tiny, small (lent its bytes, read in place on our path), and two larger than a part
# (streamed in 1 MiB parts here, read whole by range, one ending mid-part).
SIZES = {"empty": 0, "one": 1, "small": 100 * 1024, "large": 3 * MIB, "parts": 5 * MIB + 17}

READER = r"""
import hashlib, json, sys
from osstorchconnector import OssIterableDataset, OssMapDataset
uri, endpoint, cred, config, region = sys.argv[1:]
kw = dict(endpoint=endpoint, cred_path=cred, config_path=config, region=region)
out = {}
for obj in OssIterableDataset.from_prefix(uri, **kw):
    out["iter/" + obj.key] = hashlib.sha256(obj.read()).hexdigest()
for obj in OssMapDataset.from_prefix(uri, **kw):
    out["map/" + obj.key] = hashlib.sha256(obj.read()).hexdigest()
print(json.dumps(out))
"""


@pytest.mark.parametrize("http", ["ours", "reqwest"])
def test_both_http_stacks_read_every_size_exactly(store: Store, tmp_path: Path, http: str) -> None:
    expected = {}
    for name, size in SIZES.items():
        data = os.urandom(size)
        key = f"sizes/{name}"
        store.put(key, data)
        digest = hashlib.sha256(data).hexdigest()
        expected["iter/" + key] = expected["map/" + key] = digest
    cred = store.write_cred_file(tmp_path / "cred.json")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"datasetConfig": {"prefetchUnitMB": 1}}))
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    if http == "reqwest":
        env["OSSTORCHCONNECTOR_HTTP"] = "reqwest"
    else:
        env.pop("OSSTORCHCONNECTOR_HTTP", None)
    args = [store.uri("sizes/"), store.endpoint, str(cred), str(config), store.region]
    done = subprocess.run(
        [sys.executable, "-c", READER, *args], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == expected
