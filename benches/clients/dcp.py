"""One torch.distributed.checkpoint save or load over 2 ranks, timed, through one client.

Two ranks (torch.multiprocessing, gloo on CPU) hold a state dict of ``--tensors`` float32
tensors of ``--tensor-mib`` MiB each, every one a DTensor sharded by rows over the ranks (each
rank holds half of every tensor, built in place: no full copy). ``dcp.save`` or ``dcp.load``
runs between two barriers.

Clients (each in its own venv, chosen by the caller):
- ours / official: ``OssDCPFileSystem(endpoint, cred_path, config_path, region)``,
  ``fs.writer(uri)`` / ``fs.reader(uri)`` (the official's API is ours);
- s3torch: s3torchconnector's ``S3StorageWriter`` / ``S3StorageReader`` (path style; their
  file system gets an ``S3Client`` with the endpoint, which the classes do not take);
- local: torch's ``FileSystemWriter`` (``--op prepare``: writes the checkpoint the loads read).

Rank 0 prints one JSON line: ``bytes`` (the whole state), ``seconds`` (slowest rank, barrier to
barrier) and per rank ``cpu_s`` (user + system of that process), ``rss_before_kib`` (VmRSS just
before) and ``hwm_kib`` (VmHWM just after; the peak is reset to the RSS first through
/proc/self/clear_refs). A load fills the tensors in place, so its peak is overhead only.
"""

from __future__ import annotations

import argparse
import json
import socket
import time
from typing import Any

from ckpt import cpu_s, status_kib  # the same measures as the torch.save benchmark

MIB = 1024 * 1024
WORLD = 2
COLUMNS = 1024


def state(args: argparse.Namespace, rank: int, fill: bool) -> dict[str, Any]:
    """Every rank's half of each tensor as a DTensor; tensor i holds i (or zeros to load)."""
    import torch
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor, Shard

    mesh = init_device_mesh("cpu", (WORLD,))
    rows = args.tensor_mib * MIB // 4 // COLUMNS
    local_rows = rows // WORLD
    out = {}
    for i in range(args.tensors):
        local = (
            torch.full((local_rows, COLUMNS), float(i))
            if fill
            else torch.zeros(local_rows, COLUMNS)
        )
        out[f"layers.{i}.weight"] = DTensor.from_local(
            local, mesh, [Shard(0)], shape=torch.Size((rows, COLUMNS)), stride=(COLUMNS, 1)
        )
    return out


def storage(args: argparse.Namespace, save: bool) -> Any:
    uri = f"{args.scheme}://{args.bucket}/{args.prefix}"
    if args.client in ("ours", "official"):
        from osstorchconnector import OssDCPFileSystem

        fs = OssDCPFileSystem(
            args.endpoint,
            cred_path=args.cred_path,
            config_path=args.config_path,
            region=args.region,
        )
        return fs.writer(uri) if save else fs.reader(uri)
    if args.client == "s3torch":
        from s3torchconnector import S3ClientConfig
        from s3torchconnector._s3client import S3Client
        from s3torchconnector.dcp import S3StorageReader, S3StorageWriter
        from s3torchconnector.dcp.s3_file_system import S3FileSystem

        config = S3ClientConfig(force_path_style=True)
        s3 = f"s3://{args.bucket}/{args.prefix}"
        store = (S3StorageWriter if save else S3StorageReader)("us-east-1", s3, config)
        client = S3Client("us-east-1", endpoint=args.endpoint, s3client_config=config)
        store.fs = S3FileSystem("us-east-1", s3_client=client)
        return store
    if args.client == "local":
        from torch.distributed.checkpoint import FileSystemReader, FileSystemWriter

        return FileSystemWriter(args.path) if save else FileSystemReader(args.path)
    raise SystemExit(f"unknown client {args.client!r}")


def rank_main(rank: int, port: int, args: argparse.Namespace) -> None:
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD
    )
    try:
        save = args.op in ("save", "prepare")
        sd = state(args, rank, fill=save)
        store = storage(args, save)
        dist.barrier()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # VmHWM := VmRSS: the peak below is that of the save or load alone
        rss_before = status_kib("VmRSS")
        cpu0 = cpu_s()
        dist.barrier()
        start = time.perf_counter()
        if save:
            dcp.save(sd, storage_writer=store)
        else:
            dcp.load(sd, storage_reader=store)
        dist.barrier()
        seconds = time.perf_counter() - start
        mine = {
            "seconds": seconds,
            "cpu_s": cpu_s() - cpu0,
            "rss_before_kib": rss_before,
            "hwm_kib": status_kib("VmHWM"),
        }
        if not save:
            for i, t in enumerate(sd.values()):
                local = t.to_local()
                if float(local[0, 0]) != i or float(local[-1, -1]) != i:
                    raise SystemExit(f"rank {rank}: tensor {i} differs from the saved one")
        ranks: list[Any] = [None] * WORLD
        dist.all_gather_object(ranks, mine)
        if rank == 0:
            total = args.tensors * args.tensor_mib * MIB
            result = {
                "bytes": total,
                "seconds": max(r["seconds"] for r in ranks),
                "cpu_s": sum(r["cpu_s"] for r in ranks),
                # the larger rank's peak over what it held before
                "peak_kib": max(r["hwm_kib"] - r["rss_before_kib"] for r in ranks),
                "ranks": ranks,
            }
            print(json.dumps(result), flush=True)
        dist.barrier()  # no rank tears its group down while a peer still talks to it
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--client", choices=("ours", "official", "s3torch", "local"), default="ours")
    p.add_argument("--op", choices=("save", "load", "prepare"), required=True)
    p.add_argument("--endpoint", default="")
    p.add_argument("--bucket", default="bench")
    p.add_argument("--prefix", default="dcp/ckpt")
    p.add_argument("--scheme", default="oss")
    p.add_argument("--region", default="cn-hangzhou", help="OSS clients")
    p.add_argument("--cred-path", default="")
    p.add_argument("--config-path", default="")
    p.add_argument("--path", default="", help="--client local: the directory")
    p.add_argument("--tensors", type=int, default=16)
    p.add_argument("--tensor-mib", type=int, default=128)
    args = p.parse_args()

    import torch.multiprocessing as mp

    mp.spawn(rank_main, args=(free_port(), args), nprocs=WORLD, join=True)


if __name__ == "__main__":
    main()
