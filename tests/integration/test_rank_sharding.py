"""Rank sharding: under torch.distributed (real ranks, gloo on CPU), every iterable factory
shares its objects over ranks x DataLoader workers, each object read once over the job;
rank_sharding=False makes every rank read everything."""

from __future__ import annotations

import io
import json
import socket
import tarfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.utils.data

from conftest import OssServer
from osstorchconnector import DataObject, OssIterableDataset, generate_tar_archive

WORLD = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def key_of(obj: DataObject) -> str:
    return obj.key


def rank_main(rank: int, port: int, spec: dict[str, Any], out: str) -> None:
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD
    )
    try:
        conn = spec["conn"]
        kind = spec["kind"]
        common = {"transform": key_of, "rank_sharding": spec["rank_sharding"], **conn}
        if kind == "prefix":
            ds = OssIterableDataset.from_prefix(spec["uri"], **common)
        elif kind == "objects":
            ds = OssIterableDataset.from_objects(spec["uris"], **common)
        else:
            ds = OssIterableDataset.from_tar(spec["tar"], spec["index"], **common)
        loader = torch.utils.data.DataLoader(
            ds,
            batch_size=5,
            num_workers=2,
            collate_fn=list,
            multiprocessing_context=spec["context"],
        )
        keys = [k for batch in loader for k in batch]
        Path(out, f"rank{rank}.json").write_text(json.dumps(keys))
        # Every rank past its last collective before any tears its group down: a rank that
        # destroys its gloo group while a peer still talks to it can abort that peer.
        dist.barrier()
    finally:
        dist.destroy_process_group()


def run_ranks(spec: dict[str, Any], tmp_path: Path) -> list[list[str]]:
    mp.spawn(rank_main, args=(free_port(), spec, str(tmp_path)), nprocs=WORLD, join=True)
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]


@pytest.fixture
def conn(oss_server: OssServer, tmp_path: Path) -> dict[str, Any]:
    return {
        "endpoint": oss_server.endpoint,
        "region": oss_server.region,
        "cred_path": str(oss_server.write_cred_file(tmp_path / "cred.json")),
    }


@pytest.mark.parametrize(("kind", "context"), [("prefix", "fork"), ("objects", "spawn")])
def test_two_ranks_two_workers_read_each_object_once(
    oss_server: OssServer,
    bucket: str,
    tmp_path: Path,
    conn: dict[str, Any],
    kind: str,
    context: str,
) -> None:
    keys = [f"d/{i:03d}" for i in range(37)]
    oss_server.put_random(bucket, {k: 100 for k in keys})
    spec = {
        "kind": kind,
        "context": context,
        "conn": conn,
        "rank_sharding": True,
        "uri": f"oss://{bucket}/d/",
        "uris": [f"oss://{bucket}/{k}" for k in keys],
    }
    oss_server.reset_stats()
    per_rank = run_ranks(spec, tmp_path)
    assert Counter(k for r in per_rank for k in r) == Counter(keys)  # once over the job
    if kind == "prefix":  # one listing (one page) per rank, whatever the number of workers
        assert oss_server.stats()["operations"]["ListObjectsV2"]["requests"] == WORLD
    assert all(per_rank)  # both ranks read a share
    # object i goes to global worker i % 4, rank-major: rank 0 holds workers 0 and 1
    assert set(per_rank[0]) == {k for i, k in enumerate(keys) if i % 4 in (0, 1)}


def test_tar_members_shared_over_ranks_and_opt_out(
    oss_server: OssServer, bucket: str, tmp_path: Path, conn: dict[str, Any]
) -> None:
    buf = io.BytesIO()
    names = [f"m/{i:03d}" for i in range(23)]
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = 10
            tar.addfile(info, io.BytesIO(b"0123456789"))
    (tmp_path / "a.tar").write_bytes(buf.getvalue())
    generate_tar_archive("", "", "", str(tmp_path / "a.tar"), str(tmp_path / "a.idx"), "", True)
    oss_server.put(bucket, "a.tar", buf.getvalue())
    oss_server.put(bucket, "a.idx", (tmp_path / "a.idx").read_bytes())
    spec = {
        "kind": "tar",
        "context": "fork",
        "conn": conn,
        "rank_sharding": True,
        "tar": f"oss://{bucket}/a.tar",
        "index": f"oss://{bucket}/a.idx",
    }
    per_rank = run_ranks(spec, tmp_path)
    assert Counter(k for r in per_rank for k in r) == Counter(names)
    everything = run_ranks({**spec, "rank_sharding": False}, tmp_path)
    assert [Counter(r) for r in everything] == [Counter(names)] * WORLD
