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


def process_group() -> tuple[int, int] | None:
    """``(rank, world size)`` of torch.distributed's default process group, when one is
    initialised in this process (a forked DataLoader worker inherits its parent's)."""
    try:
        dist: Any = importlib.import_module("torch.distributed")
    except ImportError:
        return None
    if not (dist.is_available() and dist.is_initialized()):
        return None
    return int(dist.get_rank()), int(dist.get_world_size())


class RankShards:
    """Which share of a dataset this process reads: DataLoader worker ``w`` of ``n`` on rank
    ``r`` of ``world`` is global worker ``r * n + w`` of ``world * n`` (rank-major), so
    every object is read exactly once over the job. The rank is taken from the default
    process group, else from what was seen when the dataset was built or sent to the worker
    (a spawned worker has no process group of its own)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.seen = process_group() if enabled else None

    def __getstate__(self) -> dict[str, Any]:
        if self.enabled:  # pickled in the rank's main process, on its way to a worker
            self.seen = process_group() or self.seen
        return dict(self.__dict__)

    def current(self) -> tuple[int, int]:
        """``(global worker index, global worker count)`` of the calling process."""
        index, count = worker_shard()
        ranks = (process_group() or self.seen) if self.enabled else None
        if ranks is None or ranks[1] <= 1:
            return index, count
        rank, world = ranks
        return rank * count + index, world * count
