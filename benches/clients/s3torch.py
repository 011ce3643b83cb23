"""AWS s3torchconnector (Rust core over the AWS CRT): S3IterableDataset (S3MapDataset in mode
map), path style.

Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (dummies: nginx ignores them).
In the DataLoader mode `enable_sharding=True` gives each worker a disjoint share, as ours does.
"""

from __future__ import annotations

import argparse
from typing import Any

from _common import nbytes, parse_args, run, time_loader, time_single


def body(args: argparse.Namespace) -> dict[str, Any]:
    from s3torchconnector import S3ClientConfig, S3IterableDataset, S3MapDataset

    if args.mode == "map":
        dataset = S3MapDataset.from_prefix(
            f"s3://{args.bucket}/{args.prefix}",
            region="us-east-1",
            endpoint=args.endpoint,
            s3client_config=S3ClientConfig(force_path_style=True),
            transform=nbytes,
        )
        return time_loader(dataset, args.workers, args.batch_size, args.max_seconds, shuffle=True)

    def make(**kw: Any) -> Any:
        return S3IterableDataset.from_prefix(
            f"s3://{args.bucket}/{args.prefix}",
            region="us-east-1",
            endpoint=args.endpoint,
            s3client_config=S3ClientConfig(force_path_style=True),
            **kw,
        )

    if args.mode == "single":
        return time_single(make(), args.max_seconds)
    dataset = make(transform=nbytes, enable_sharding=True)
    return time_loader(dataset, args.workers, args.batch_size, args.max_seconds)


if __name__ == "__main__":
    run(parse_args(__doc__ or ""), body)
