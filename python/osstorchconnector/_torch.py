"""The little of torch the datasets need, so the package imports without torch installed."""

from __future__ import annotations

import importlib
from typing import Any

IterableDatasetBase: Any = object
MapDatasetBase: Any = object
get_worker_info: Any = lambda: None  # noqa: E731
try:
    # Imported by name so type checkers without torch stubs accept the fallback.
    _data: Any = importlib.import_module("torch.utils.data")
    IterableDatasetBase = _data.IterableDataset
    MapDatasetBase = _data.Dataset
    get_worker_info = _data.get_worker_info
except ImportError:  # torch is optional; DataLoader integration needs it
    pass


def worker_shard() -> tuple[int, int]:
    """``(worker id, number of workers)`` inside a DataLoader worker, else ``(0, 1)``."""
    info = get_worker_info()
    if info is None:
        return 0, 1
    return int(info.id), int(info.num_workers)
