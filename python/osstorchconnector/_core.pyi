"""Type stubs for the Rust extension ``osstorchconnector._core``."""

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Self, final

from typing_extensions import Buffer

__all__ = [
    "Body",
    "Client",
    "ObjectStream",
    "PartReader",
    "RangeStream",
    "StreamedObject",
    "Upload",
    "Window",
    "__version__",
    "parse_oss_uri",
    "read_via",
    "reset_log_cache",
    "uri_protocol",
]

__version__: str

def parse_oss_uri(uri: str) -> tuple[str, str]:
    """Splits ``oss://bucket/key`` (or ``s3://bucket/key``) into ``(bucket, key)``.

    Raises:
        OssConfigError: the URI does not start with ``oss://`` or ``s3://`` or names no
            valid bucket.
    """

def uri_protocol(uri: str) -> str:
    """``"oss"`` or ``"s3"``: the protocol the URI's scheme names.

    Raises:
        OssConfigError: the URI is malformed.
    """

def read_via(size: int, readinto: Callable[[Window], int]) -> bytes:
    """Reads ``size`` bytes into a new ``bytes`` by one call of ``readinto`` with a writable
    :class:`Window` on its memory; cut to the count ``readinto`` returns.

    Raises:
        BufferError: ``readinto`` kept a view of the window.
    """

def reset_log_cache() -> None:
    """Makes Rust log records follow the current Python ``logging`` levels."""

@final
class Body:
    """Bytes of (part of) an object, held in Rust; copied once on the way out."""

    def __len__(self) -> int: ...
    def read(self, start: int = 0, size: int | None = None) -> bytes:
        """Bytes ``start:start+size`` (to the end when ``size`` is None) as a new ``bytes``."""
    def readinto(self, start: int, buffer: Buffer) -> int:
        """Copies bytes from ``start`` into a writable, contiguous byte buffer; returns how many."""

@final
class Window:
    """A writable buffer over a ``bytes`` being filled by :func:`read_via`."""

    def __buffer__(self, flags: int, /) -> memoryview: ...

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
        protocol: str = "oss",
    ) -> Self: ...
    @property
    def protocol(self) -> str: ...
    @property
    def region(self) -> str: ...
    @property
    def config_warnings(self) -> list[str]: ...
    @property
    def config_path(self) -> str: ...
    @property
    def part_size(self) -> int: ...
    @property
    def prefetch_concurrency(self) -> int: ...
    @property
    def log_level(self) -> int: ...
    @property
    def log_path(self) -> str: ...
    def stream_prefix(
        self, uri: str, *, shard_index: int = 0, shard_count: int = 1, skip: int = 0
    ) -> ObjectStream:
        """Objects under the prefix; with a shard, every ``shard_count``-th from
        ``shard_index``, the first ``skip`` of those passed over unfetched."""
    def stream_objects(
        self, items: Iterable[tuple[str, str] | tuple[str, str, int]]
    ) -> ObjectStream:
        """The objects of ``(uri, label)`` or ``(uri, label, size)`` items (a negative size is
        unknown), fetched ahead, in order."""
    def get_object(self, uri: str) -> Body: ...
    def get_range(
        self, bucket: str, key: str, start: int, end: int, *, if_match: str | None = None
    ) -> Body:
        """Bytes ``start:end`` of an object (fewer when it is shorter); with ``if_match``, of
        that version only.

        Raises:
            OssObjectChangedError: the object no longer has ETag ``if_match``.
        """
    def read_span_into(
        self,
        bucket: str,
        key: str,
        start: int,
        buffer: Buffer,
        *,
        if_match: str | None = None,
        part_size: int | None = None,
        concurrency: int | None = None,
    ) -> None:
        """Bytes ``start:start+len(buffer)`` of an object straight into ``buffer``, in parts
        of ``part_size`` fetched at once, all of one version (``if_match``, else the first
        part's).

        Raises:
            OssObjectChangedError: the object changed during the read, or no longer has ETag
                ``if_match``.
        """

    def stream_ranges(
        self,
        bucket: str,
        key: str,
        ranges: list[tuple[int, int]],
        *,
        if_match: str | None = None,
        concurrency: int | None = None,
    ) -> RangeStream:
        """Byte ranges ``(start, end)`` of one object, fetched ahead (``concurrency``, default
        ``prefetchConcurrency``, within ``prefetchMB``) and yielded in order, all of one
        version (``if_match``).

        Raises:
            ValueError: an empty range.
        """

    @property
    def checkpoint_part_size(self) -> int:
        """Range size of checkpoint reads (``checkpointConfig.prefetchIoSizeMB``), bytes."""
    @property
    def checkpoint_concurrency(self) -> int:
        """Ranged GETs in flight per checkpoint read."""
    def upload(self, uri: str) -> Upload:
        """Starts writing the object at ``uri``."""
    def head_object(self, uri: str) -> tuple[int, str, int | None]:
        """``(size, etag, crc or None)``: the CRC-64 the server states, of the protocol's own
        algorithm (CRC-64/XZ over ``oss://``, CRC-64/NVME over ``s3://``).

        Raises:
            OssNotFoundError: no such object.
        """
    def list_page(
        self, bucket: str, prefix: str, continuation_token: str | None = None
    ) -> tuple[list[tuple[str, int, str]], str | None]:
        """One listing page: ``(key, size, etag)`` items and the next page's token."""
    def delete_object(self, uri: str) -> None: ...
    def copy_object(self, source: str, target: str) -> str:
        """Server-side copy; returns the copy's ETag."""

@final
class RangeStream:
    """The ranges of :meth:`Client.stream_ranges`, as :class:`Body` objects in order."""

    def __iter__(self) -> Self: ...
    def __next__(self) -> Body: ...
    def close(self) -> None:
        """Stops every fetch still running."""

@final
class Upload:
    """An object being written: it is replaced when :meth:`close` completes."""

    def write(self, buffer: Buffer) -> int: ...
    def close(self) -> tuple[str, int, int]:
        """Completes the upload; ``(etag, size, crc)`` (the CRC-64 of the bytes written:
        CRC-64/XZ over ``oss://``, CRC-64/NVME over ``s3://``). On failure the upload is
        aborted."""
    def abort(self) -> None: ...
    @property
    def written(self) -> int: ...

@final
class PartReader:
    """The remaining parts of one large object, while its stream is still on it."""

    def next_part(self) -> tuple[int, Body] | None: ...
    def read_whole(self) -> bytes | None:
        """The whole object, when its parts were written into memory lent to it; None (nothing
        taken) when they were not or the stream has moved on."""
        ...
    def read_rest_into(self, offset: int, buffer: Buffer) -> int:
        """Everything from ``offset`` to the object's end, straight into ``buffer`` (exactly
        that long); 0 when the stream has moved on or the sizes do not match."""
        ...

@final
class StreamedObject:
    """One object as the stream hands it over."""

    @property
    def bucket(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def etag(self) -> str:
        """ETag of the version every byte comes from; later range reads are pinned to it."""
    @property
    def label(self) -> str: ...
    @property
    def first(self) -> Body | bytes:
        """The first bytes: the whole object as ``bytes`` when the pipeline wrote it into
        one, else a :class:`Body` (shorter than ``size`` when more parts follow)."""
    @property
    def rest(self) -> PartReader | None:
        """The rest while the stream is on this object; None when ``first`` is all of it."""

@final
class ObjectStream(Iterator[StreamedObject]):
    """Objects in input order."""

    def __iter__(self) -> ObjectStream: ...
    def __next__(self) -> StreamedObject: ...
    def one_large_at_a_time(self) -> None:
        """From now on, while the consumer is on a large object lent memory whole, later
        objects' requests wait until it moves on (for a stream in one of several workers)."""
    def close(self) -> None:
        """Cancels all prefetching except the rest of the current object."""
