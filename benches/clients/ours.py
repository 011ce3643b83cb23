"""This project's OssIterableDataset (run with /work/main/.venv's python)."""

from __future__ import annotations

import argparse
from typing import Any

from _common import nbytes, parse_args, run, time_loader, time_single


def body(args: argparse.Namespace) -> dict[str, Any]:
    from osstorchconnector import OssIterableDataset

    def make(**kw: Any) -> Any:
        return OssIterableDataset.from_prefix(
            f"oss://{args.bucket}/{args.prefix}",
            endpoint=args.endpoint,
            cred_path=args.cred_path,
            config_path=args.config_path,
            region=args.region,
            **kw,
        )

    if args.mode == "single":
        # default transform, as users write it
        return time_single(make(), args.max_seconds, args.warm_epochs)
    return time_loader(make(transform=nbytes), args.workers, args.batch_size, args.max_seconds)


if __name__ == "__main__":
    run(parse_args(__doc__ or ""), body)
