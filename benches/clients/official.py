"""Alibaba's official osstorchconnector 1.2.3 from PyPI (closed C++ core), in its own venv.

It addresses buckets virtual-hosted only (`<bucket>.<endpoint host>`), so the harness gives it an
endpoint such as ``http://oss.bench.localhost:PORT`` and runs this script in a private mount
namespace whose /etc/hosts maps ``<bucket>.oss.bench.localhost`` to 127.0.0.1.
"""

from __future__ import annotations

import argparse
from typing import Any

from _common import nbytes, parse_args, run, time_loader, time_single


def body(args: argparse.Namespace) -> dict[str, Any]:
    from osstorchconnector import OssIterableDataset, OssMapDataset

    cls = OssMapDataset if args.mode == "map" else OssIterableDataset
    conn = {
        "endpoint": args.endpoint,
        "cred_path": args.cred_path,
        "config_path": args.config_path,
        "region": args.region,
    }

    def make(**kw: Any) -> Any:
        if args.tar:
            tar = f"oss://{args.bucket}/{args.tar}"
            return cls.from_tar(tar, tar + ".idx", **conn, **kw)
        return cls.from_prefix(f"oss://{args.bucket}/{args.prefix}", **conn, **kw)

    if args.mode == "map":
        # its DataObjects do not pickle: the transform returns the length, as for loader mode
        dataset = make(transform=nbytes)
        return time_loader(dataset, args.workers, args.batch_size, args.max_seconds, shuffle=True)
    if args.mode == "single":
        return time_single(make(), args.max_seconds)
    return time_loader(make(transform=nbytes), args.workers, args.batch_size, args.max_seconds)


if __name__ == "__main__":
    run(parse_args(__doc__ or ""), body)
