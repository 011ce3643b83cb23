"""A 1 GiB state dict saved with torch.save through OssCheckpoint with the default settings:
bytes equal to a local torch.save (read back with the official SDK), memory bounded by the
upload budget (VmHWM of a fresh process), and the same under 503s and resets on the parts;
writers inside DataLoader workers, forked and spawned."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import alibabacloud_oss_v2 as oss
import pytest

from conftest import OssServer
from osstorchconnector import OssCheckpoint

torch = pytest.importorskip("torch")

MIB = 1024 * 1024
# The save runs in a fresh process: it builds the state dict, notes its peak memory (VmHWM),
# saves with the default checkpointConfig, notes the peak again, and hashes a local
# torch.save of the same dict for the comparison.
SAVE_SCRIPT = """
import hashlib, io, json, sys
import torch
from osstorchconnector import OssCheckpoint

args = json.loads(sys.argv[1])

def vm_hwm_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

g = torch.Generator().manual_seed(args["seed"])
sd = {f"w{i}": torch.randint(-2**31, 2**31 - 1, (args["mib"] // 8 * 2**20 // 4,),
                             dtype=torch.int32, generator=g) for i in range(8)}
sd["step"] = torch.tensor(args["seed"])
cp = OssCheckpoint(args["endpoint"], cred_path=args["cred"], config_path=args["config"],
                   region=args["region"])
before = vm_hwm_kib()
with cp.writer(args["uri"]) as w:
    torch.save(sd, w)
after = vm_hwm_kib()
local = io.BytesIO()
torch.save(sd, local)
print(json.dumps({"before_kib": before, "after_kib": after,
                  "sha256": hashlib.sha256(local.getbuffer()).hexdigest(),
                  "size": local.getbuffer().nbytes}))
"""


def save_in_child(
    server: OssServer, tmp_path: Path, uri: str, mib: int, seed: int
) -> dict[str, Any]:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"retryConfig": {"maxAttempts": 15}}))  # defaults otherwise
    args = {
        "endpoint": server.endpoint,
        "region": server.region,
        "cred": str(server.write_cred_file(tmp_path / "cred.json")),
        "config": str(config),
        "uri": uri,
        "mib": mib,
        "seed": seed,
    }
    done = subprocess.run(
        [sys.executable, "-c", SAVE_SCRIPT, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def sdk_sha256(server: OssServer, bucket: str, key: str) -> tuple[str, int]:
    """Hash and size of the object as the official SDK downloads it (streamed)."""
    result = server.sdk_client().get_object(oss.GetObjectRequest(bucket=bucket, key=key))
    h = hashlib.sha256()
    size = 0
    for chunk in result.body.iter_bytes():
        h.update(chunk)
        size += len(chunk)
    return h.hexdigest(), size


@pytest.mark.parametrize("faults", [False, True], ids=["clean", "503s-and-resets"])
def test_a_gigabyte_state_dict_round_trips_within_the_upload_budget(
    oss_server: OssServer, bucket: str, tmp_path: Path, faults: bool
) -> None:
    uri = f"oss://{bucket}/ckpt/1g.pt"
    if faults:
        oss_server.set_faults(seed=7, bucket=bucket, methods=["PUT"], p_503=0.1, p_reset=0.05)
    try:
        saved = save_in_child(oss_server, tmp_path, uri, mib=1024, seed=int(faults))
        if faults:
            state = oss_server.faults()["state"]
            assert state["faultable_requests"] >= 64, state  # every part could be hit
            errors = oss_server.stats()["responses_by_status"].get("503", 0)
            assert errors > 0, "faults were injected"
    finally:
        oss_server.clear_faults()
    assert saved["size"] >= 1024 * MIB
    assert sdk_sha256(oss_server, bucket, "ckpt/1g.pt") == (saved["sha256"], saved["size"])
    assert oss_server.pending_uploads(bucket) == []
    growth_mib = (saved["after_kib"] - saved["before_kib"]) / 1024
    print(f"1 GiB save ({'with' if faults else 'without'} faults): VmHWM +{growth_mib:.0f} MiB")
    # uploadBufferSizeMB (256 by default) + 100 MiB.
    assert growth_mib <= 356, f"peak memory grew {growth_mib:.0f} MiB while saving 1 GiB"
    if faults:
        return
    cp = OssCheckpoint(
        oss_server.endpoint,
        cred_path=str(oss_server.write_cred_file(tmp_path / "cred.json")),
        region=oss_server.region,
    )
    loaded = torch.load(cp.reader(uri), weights_only=True)
    g = torch.Generator().manual_seed(0)
    for i in range(8):
        expected = torch.randint(
            -(2**31), 2**31 - 1, (1024 // 8 * MIB // 4,), dtype=torch.int32, generator=g
        )
        assert torch.equal(loaded[f"w{i}"], expected), f"w{i}"


class Saves(torch.utils.data.Dataset):  # type: ignore[misc]
    """Each item saves a tensor to its own object from inside a DataLoader worker."""

    def __init__(self, cp: OssCheckpoint, bucket: str) -> None:
        self.cp = cp
        self.bucket = bucket

    def __len__(self) -> int:
        return 6

    def __getitem__(self, i: int) -> str:
        key = f"workers/{i}.pt"
        with self.cp.writer(f"oss://{self.bucket}/{key}") as w:
            torch.save(torch.full((300_000,), i), w)
        return key


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_writers_inside_dataloader_workers(
    oss_server: OssServer, bucket: str, tmp_path: Path, context: str
) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"checkpointConfig": {"uploadIoSizeMB": 1}}))
    cp = OssCheckpoint(
        oss_server.endpoint,
        cred_path=str(oss_server.write_cred_file(tmp_path / "cred.json")),
        config_path=str(config),
        region=oss_server.region,
    )
    cp.writer(f"oss://{bucket}/workers/parent.pt").close()  # the parent's client exists
    loader = torch.utils.data.DataLoader(
        Saves(cp, bucket), batch_size=None, num_workers=2, multiprocessing_context=context
    )
    keys = sorted(loader)
    assert keys == [f"workers/{i}.pt" for i in range(6)]
    for i, key in enumerate(keys):
        loaded = torch.load(cp.reader(f"oss://{bucket}/{key}"), weights_only=True)
        assert torch.equal(loaded, torch.full((300_000,), i))
    assert oss_server.pending_uploads(bucket) == []
