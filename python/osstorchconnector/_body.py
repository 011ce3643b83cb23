"""How a :class:`~osstorchconnector.DataObject` gets its bytes: internal protocols between the
dataset classes and the Rust extension, kept out of the public ``data_object`` module."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from typing_extensions import Buffer


class Body(Protocol):
    """Bytes of (part of) an object; ``osstorchconnector._core.Body`` holds them in Rust."""

    def __len__(self) -> int: ...

    def read(self, start: int = 0, size: int | None = None) -> bytes:
        """Bytes ``start:start+size`` as a new ``bytes``."""
        ...

    def readinto(self, start: int, buffer: Buffer) -> int:
        """Copies bytes from ``start`` into a writable byte buffer; returns how many."""
        ...


class BytesBody:
    """A :class:`Body` over a Python ``bytes`` (an unpickled or hand-made object)."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data = data

    def __len__(self) -> int:
        return len(self._data)

    def read(self, start: int = 0, size: int | None = None) -> bytes:
        end = len(self._data) if size is None else start + size
        return self._data[start:end]  # the whole of a bytes slices to itself, without a copy

    def readinto(self, start: int, buffer: Buffer) -> int:
        with memoryview(buffer) as target:
            piece = memoryview(self._data)[start : start + len(target)]
            target[: len(piece)] = piece
            return len(piece)


class PartSource(Protocol):
    """The rest of a large object, as its stream delivers it."""

    def next_part(self) -> tuple[int, Body] | None:
        """``(offset, body)`` of the next part; None when done or the stream moved on."""
        ...

    def read_whole(self) -> bytes | None:
        """The whole object, when the stream wrote it into one ``bytes``; None when it did not
        (nothing taken) or can no longer."""
        ...

    def read_rest_into(self, offset: int, buffer: Buffer) -> int:
        """Everything from ``offset`` to the end into ``buffer`` (exactly that long); the
        bytes written, 0 when the stream can no longer do it."""
        ...


class RangeReader(Protocol):
    """Reads byte ranges of any object by name, pinned to one version (used once the stream
    can no longer help)."""

    part_size: int
    """Bytes per ranged GET: a read of at most this many is one request."""
    readahead: int
    """Bytes one sequential read may fetch ahead at most (in parts fetched at once)."""
    protocol: str
    """``"oss"`` or ``"s3"``: whose objects these are (their URIs' scheme)."""

    def __call__(self, bucket: str, key: str, start: int, end: int, etag: str) -> Body:
        """Bytes ``start:end`` of the version with ``etag`` (any version when empty)."""
        ...

    def read_into(self, bucket: str, key: str, start: int, buffer: Buffer, etag: str) -> None:
        """Bytes ``start:start+len(buffer)`` of that version straight into ``buffer``,
        several parts at once."""
        ...


class SliceBody:
    """Bytes ``start:start+size`` of another :class:`Body`, without a copy (a tar member inside
    the run of members fetched with it)."""

    __slots__ = ("_base", "_size", "_start")

    def __init__(self, base: Body, start: int, size: int) -> None:
        self._base = base
        self._start = start
        self._size = size

    def __len__(self) -> int:
        return self._size

    def read(self, start: int = 0, size: int | None = None) -> bytes:
        start = min(start, self._size)
        left = self._size - start
        return self._base.read(self._start + start, left if size is None else min(size, left))

    def readinto(self, start: int, buffer: Buffer) -> int:
        with memoryview(buffer) as view, view.cast("B") as target:
            n = max(0, min(len(target), self._size - start))
            return self._base.readinto(self._start + start, target[:n]) if n else 0
