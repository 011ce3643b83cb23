"""One checkpoint save or load, timed, in a fresh process: `torch.save` of a generated state dict
to an object, or `torch.load(weights_only=True)` of one, through one client.

Clients (each run in its own venv, chosen by the caller):
- ours / official: ``OssCheckpoint(endpoint, cred_path, config_path)``, ``.writer(uri)`` /
  ``.reader(uri)`` (the same code for both: the official's API is ours);
- s3torch: s3torchconnector's ``S3Checkpoint(region, endpoint)``, path style;
- boto3: ``torch.save`` into a ``BytesIO`` then ``upload_fileobj``; ``download_fileobj`` into a
  ``BytesIO`` then ``torch.load`` (defaults of boto3's TransferConfig: 8 MiB parts, 10 threads).

Prints one JSON line: ``bytes``, ``seconds`` (from opening the writer or reader to having closed
it), ``cpu_s`` (user + system of this process, all its threads, over the same span),
``rss_before_kib`` (VmRSS just before) and ``hwm_kib`` (VmHWM just after, the peak having been
reset to the current RSS just before through /proc/self/clear_refs). For a save the state dict
is in memory before; for a load the loaded state dict is part of the peak.

``--op prepare --path FILE`` writes the same state dict to a local file (the object the loads read).
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import time
from typing import Any

MIB = 1024 * 1024


def state_dict(tensors: int, tensor_mib: int) -> dict[str, Any]:
    """`tensors` float32 tensors of `tensor_mib` MiB each; tensor i is filled with i."""
    import torch

    n = tensor_mib * MIB // 4
    return {f"layers.{i}.weight": torch.full((n,), float(i)) for i in range(tensors)}


def check(sd: dict[str, Any], tensors: int, tensor_mib: int) -> int:
    """The loaded state dict is the generated one (shape and fill of every tensor); its bytes."""
    total = 0
    for i in range(tensors):
        t = sd[f"layers.{i}.weight"]
        n = tensor_mib * MIB // 4
        if t.numel() != n or float(t[0]) != i or float(t[-1]) != i or float(t[n // 2]) != i:
            raise SystemExit(f"tensor {i} differs from the saved one")
        total += t.numel() * 4
    if len(sd) != tensors:
        raise SystemExit(f"{len(sd)} tensors loaded, {tensors} saved")
    return total


def status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def opener(args: argparse.Namespace) -> Any:
    """(save(sd), load() -> sd) for the chosen client."""
    import torch

    if args.client in ("ours", "official"):
        from osstorchconnector import OssCheckpoint

        ck = OssCheckpoint(
            endpoint=args.endpoint,
            cred_path=args.cred_path,
            config_path=args.config_path,
            region=args.region,
        )
        uri = f"oss://{args.bucket}/{args.key}"

        def save(sd: dict[str, Any]) -> None:
            with ck.writer(uri) as w:
                torch.save(sd, w)

        def load() -> Any:
            with ck.reader(uri) as r:
                return torch.load(r, weights_only=True)

        return save, load
    if args.client == "s3torch":
        from s3torchconnector import S3Checkpoint, S3ClientConfig

        s3ck = S3Checkpoint(
            region="us-east-1",
            endpoint=args.endpoint,
            s3client_config=S3ClientConfig(force_path_style=True),
        )
        s3uri = f"s3://{args.bucket}/{args.key}"

        def s3_save(sd: dict[str, Any]) -> None:
            with s3ck.writer(s3uri) as w:
                torch.save(sd, w)

        def s3_load() -> Any:
            with s3ck.reader(s3uri) as r:
                return torch.load(r, weights_only=True)

        return s3_save, s3_load
    if args.client == "boto3":
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "s3",
            endpoint_url=args.endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench-secret",
            config=Config(s3={"addressing_style": "path"}),
        )

        def boto_save(sd: dict[str, Any]) -> None:
            buf = io.BytesIO()
            torch.save(sd, buf)
            buf.seek(0)
            client.upload_fileobj(buf, args.bucket, args.key)

        def boto_load() -> Any:
            buf = io.BytesIO()
            client.download_fileobj(args.bucket, args.key, buf)
            buf.seek(0)
            return torch.load(buf, weights_only=True)

        return boto_save, boto_load
    raise SystemExit(f"unknown client {args.client!r}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--client", choices=("ours", "official", "s3torch", "boto3"), default="ours")
    p.add_argument("--op", choices=("save", "load", "prepare"), required=True)
    p.add_argument("--endpoint", default="")
    p.add_argument("--bucket", default="bench")
    p.add_argument("--key", default="ckpt/state.pt")
    p.add_argument("--region", default="cn-hangzhou", help="OSS clients")
    p.add_argument("--cred-path", default="")
    p.add_argument("--config-path", default="")
    p.add_argument("--path", default="", help="--op prepare: the local file to write")
    p.add_argument("--tensors", type=int, default=64)
    p.add_argument("--tensor-mib", type=int, default=32)
    args = p.parse_args()

    import torch

    if args.op == "prepare":
        torch.save(state_dict(args.tensors, args.tensor_mib), args.path)
        return
    save, load = opener(args)
    sd = state_dict(args.tensors, args.tensor_mib) if args.op == "save" else None
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM := VmRSS: the peak below is that of the save or load alone
    rss_before = status_kib("VmRSS")
    cpu0 = cpu_s()
    start = time.perf_counter()
    if sd is not None:
        save(sd)
        nbytes = sum(t.numel() * 4 for t in sd.values())
    else:
        loaded = load()
    seconds = time.perf_counter() - start
    cpu = cpu_s() - cpu0
    hwm = status_kib("VmHWM")
    if sd is None:
        nbytes = check(loaded, args.tensors, args.tensor_mib)
    result = {
        "bytes": nbytes,
        "seconds": seconds,
        "cpu_s": cpu,
        "rss_before_kib": rss_before,
        "hwm_kib": hwm,
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
