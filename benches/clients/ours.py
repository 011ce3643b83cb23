"""This project's datasets (run with the repository's .venv python): OssIterableDataset
(modes single, loader), OssMapDataset (mode map: DataLoader with shuffle=True), from the prefix
or, with --tar, from a tar archive and its index."""

from __future__ import annotations

from _common import parse_args, run, time_oss_datasets

if __name__ == "__main__":
    run(parse_args(__doc__ or ""), time_oss_datasets)
