"""Type stubs for the Rust extension ``osstorchconnector._core``."""

from collections.abc import Iterable, Iterator
from typing import Any, Self, final

__all__ = [
    "Client",
    "ObjectStream",
    "PartReader",
    "__version__",
    "parse_oss_uri",
    "reset_log_cache",
]

__version__: str

def parse_oss_uri(uri: str) -> tuple[str, str]:
    """Splits ``oss://bucket/key`` into ``(bucket, key)``.

    Raises:
        OssConfigError: the URI does not start with ``oss://`` or names no valid bucket.
    """

def reset_log_cache() -> None:
    """Makes Rust log records follow the current Python ``logging`` levels."""

@final
class Client:
    """Endpoint, region, credentials and configuration, validated when built."""

    def __new__(
        cls,
        endpoint: str,
        *,
        region: str = "",
        cred_path: str = "",
        config_path: str = "",
        cred_provider: Any = None,
        path_style: bool | None = None,
    ) -> Self: ...
    @property
    def region(self) -> str: ...
    @property
    def config_warnings(self) -> list[str]: ...
    @property
    def config_path(self) -> str: ...
    @property
    def part_size(self) -> int: ...
    @property
    def log_level(self) -> int: ...
    @property
    def log_path(self) -> str: ...
    def stream_prefix(
        self, uri: str, *, shard_index: int = 0, shard_count: int = 1
    ) -> ObjectStream: ...
    def stream_objects(self, items: Iterable[tuple[str, str]]) -> ObjectStream: ...
    def get_object(self, uri: str) -> bytes: ...
    def get_range(self, bucket: str, key: str, start: int, end: int) -> bytes: ...

@final
class PartReader:
    """The remaining parts of one large object, while its stream is still on it."""

    def next_part(self) -> tuple[int, bytes] | None: ...

_StreamItem = tuple[str, str, int, str, bytes, PartReader | None]

@final
class ObjectStream(Iterator[_StreamItem]):
    """Objects as ``(bucket, key, size, label, first_part, rest)``, in input order."""

    def __iter__(self) -> ObjectStream: ...
    def __next__(self) -> _StreamItem: ...
    def close(self) -> None:
        """Cancels all prefetching except the rest of the current object."""
