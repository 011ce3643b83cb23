"""This project's datasets (run with the repository's .venv python): OssIterableDataset
(modes single, loader), OssMapDataset (mode map: DataLoader with shuffle=True), from the prefix
or, with --tar, from a tar archive and its index."""

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
        dataset = make(transform=nbytes)
        return time_loader(dataset, args.workers, args.batch_size, args.max_seconds, shuffle=True)
    if args.mode == "single":
        # default transform, as users write it
        return time_single(make(), args.max_seconds, args.warm_epochs)
    return time_loader(make(transform=nbytes), args.workers, args.batch_size, args.max_seconds)


if __name__ == "__main__":
    run(parse_args(__doc__ or ""), body)
