"""torch.distributed.checkpoint on OSS: two real ranks (gloo, CPU) save a DTensor-sharded
state through OssDCPFileSystem, load it back sharded, and one process loads it whole
(resharding). What was written is listed with the official SDK."""

from __future__ import annotations

import socket
import warnings
from pathlib import Path
from typing import Any

import alibabacloud_oss_v2 as oss
import pytest
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
import torch.multiprocessing as mp

from conftest import OssServer
from osstorchconnector import OssDCPFileSystem

WORLD = 2
FULL = torch.arange(64 * 8, dtype=torch.float32).reshape(64, 8)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rank_main(rank: int, port: int, conn: dict[str, Any], uri: str) -> None:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD
    )
    try:
        mesh = init_device_mesh("cpu", (WORLD,))
        fs = OssDCPFileSystem(**conn)
        state = {"w": distribute_tensor(FULL, mesh, [Shard(0)]), "step": torch.tensor(7)}
        dcp.save(state, storage_writer=fs.writer(uri, thread_count=2))
        back = {
            "w": distribute_tensor(torch.zeros_like(FULL), mesh, [Shard(0)]),
            "step": torch.tensor(0),
        }
        dcp.load(back, storage_reader=fs.reader(uri))
        assert torch.equal(back["w"].full_tensor(), FULL)
        assert int(back["step"]) == 7
        # Every rank past its last collective before any tears its group down: a rank that
        # destroys its gloo group while a peer still talks to it can abort that peer.
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_dcp_save_on_two_ranks_load_resharded(
    oss_server: OssServer, bucket: str, tmp_path: Path
) -> None:
    conn = {
        "endpoint": oss_server.endpoint,
        "region": oss_server.region,
        "cred_path": str(oss_server.write_cred_file(tmp_path / "cred.json")),
    }
    uri = f"oss://{bucket}/ckpt/step-7"
    mp.spawn(rank_main, args=(free_port(), conn, uri), nprocs=WORLD, join=True)

    listed = oss_server.sdk_client().list_objects_v2(
        oss.ListObjectsV2Request(bucket=bucket, prefix="ckpt/step-7/")
    )
    keys = sorted(o.key for o in listed.contents or [])
    assert "ckpt/step-7/.metadata" in keys
    assert not any(k.endswith(".tmp") for k in keys), keys
    data = [k.rsplit("/", 1)[1] for k in keys if k.endswith(".distcp")]
    assert {d.split("_")[2] for d in data} == {"0", "1"}, data  # __<rank>_<thread>.distcp
    assert oss_server.pending_uploads(bucket) == []

    whole = {"w": torch.zeros_like(FULL), "step": torch.tensor(0)}
    with warnings.catch_warnings():  # torch says it loads in a single process: it does
        warnings.filterwarnings("ignore", message=".*single process", category=UserWarning)
        dcp.load(whole, storage_reader=OssDCPFileSystem(**conn).reader(uri))
    assert torch.equal(whole["w"], FULL)  # one process reads both ranks' shards
    assert int(whole["step"]) == 7


def checkpoint_id_rank(rank: int, port: int, uri: str) -> None:
    """A rank that names the checkpoint by URI only: DCP finds our file system through fsspec,
    configured from the environment."""
    import osstorchconnector  # noqa: F401  (registers oss:// with fsspec)

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD
    )
    try:
        half = FULL.shape[0] // WORLD
        state = {f"rank{rank}": FULL[rank * half : (rank + 1) * half].clone()}
        dcp.save(state, checkpoint_id=uri)
        back = {f"rank{rank}": torch.zeros(half, FULL.shape[1])}
        dcp.load(back, checkpoint_id=uri)
        assert torch.equal(back[f"rank{rank}"], state[f"rank{rank}"])
        # Every rank past its last collective before any tears its group down: a rank that
        # destroys its gloo group while a peer still talks to it can abort that peer.
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_checkpoint_id_uri_with_environment(
    oss_server: OssServer, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OSS_ENDPOINT", oss_server.endpoint)
    monkeypatch.setenv("OSS_REGION", oss_server.region)
    monkeypatch.setenv("OSS_ACCESS_KEY_ID", oss_server.access_key_id)
    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", oss_server.access_key_secret)
    monkeypatch.setenv("PYTHONWARNINGS", "ignore::UserWarning")  # torch: "fsync not supported"
    uri = f"oss://{bucket}/by-uri"
    mp.spawn(checkpoint_id_rank, args=(free_port(), uri), nprocs=WORLD, join=True)
    assert oss_server.exists(bucket, "by-uri/.metadata")
    whole = {"rank0": torch.zeros(32, 8), "rank1": torch.zeros(32, 8)}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*single process", category=UserWarning)
        dcp.load(whole, checkpoint_id=uri)
    assert torch.equal(torch.cat([whole["rank0"], whole["rank1"]]), FULL)


def failing_rank(rank: int, port: int, conn: dict[str, Any], uri: str) -> None:
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD
    )
    try:
        fs = OssDCPFileSystem(**conn)
        dcp.save({f"rank{rank}": FULL.clone()}, storage_writer=fs.writer(uri))
    finally:
        dist.destroy_process_group()


def test_a_failed_save_never_looks_complete(
    oss_server: OssServer, bucket: str, tmp_path: Path
) -> None:
    """Every data file's upload fails (after its retries): the save raises on the ranks, and
    there is no .metadata, so nothing takes the checkpoint for complete."""
    config = tmp_path / "config.json"
    config.write_text('{"retryConfig": {"maxAttempts": 2}}')
    conn = {
        "endpoint": oss_server.endpoint,
        "region": oss_server.region,
        "cred_path": str(oss_server.write_cred_file(tmp_path / "cred.json")),
        "config_path": str(config),
    }
    oss_server.set_faults(scope="put", bucket=bucket, keys_prefix="broken/", p_500=1.0)
    try:
        with pytest.raises((mp.ProcessRaisedException, mp.ProcessExitedException)):
            mp.spawn(
                failing_rank,
                args=(free_port(), conn, f"oss://{bucket}/broken"),
                nprocs=WORLD,
                join=True,
            )
    finally:
        oss_server.clear_faults()
    assert not oss_server.exists(bucket, "broken/.metadata")
    assert not oss_server.exists(bucket, "broken/.metadata.tmp")
    assert oss_server.pending_uploads(bucket) == []


def async_rank(rank: int, port: int, conn: dict[str, Any], uri: str) -> None:
    import faulthandler
    import sys

    faulthandler.enable(file=sys.stderr, all_threads=True)
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD
    )
    try:
        mesh = init_device_mesh("cpu", (WORLD,))
        fs = OssDCPFileSystem(**conn)
        state = {"w": distribute_tensor(FULL * 2, mesh, [Shard(0)])}
        # Staged now, written by a background thread while this rank goes on. As torch advises
        # for async saves, the checkpoint's collectives get a gloo group of their own, apart
        # from the training's.
        checkpointing = dist.new_group(backend="gloo")
        saved = dcp.async_save(state, storage_writer=fs.writer(uri), process_group=checkpointing)
        saved.result()
        back = {"w": distribute_tensor(torch.zeros_like(FULL), mesh, [Shard(0)])}
        dcp.load(back, storage_reader=fs.reader(uri))
        assert torch.equal(back["w"].full_tensor(), FULL * 2)
        # Every rank past its last collective before any tears its group down: a rank that
        # destroys its gloo group while a peer still talks to it can abort that peer.
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_dcp_async_save(oss_server: OssServer, bucket: str, tmp_path: Path) -> None:
    conn = {
        "endpoint": oss_server.endpoint,
        "region": oss_server.region,
        "cred_path": str(oss_server.write_cred_file(tmp_path / "cred.json")),
    }
    uri = f"oss://{bucket}/async/step-1"
    mp.spawn(async_rank, args=(free_port(), conn, uri), nprocs=WORLD, join=True)
    assert oss_server.exists(bucket, "async/step-1/.metadata")
