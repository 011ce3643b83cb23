"""DataObject: one object of a dataset, readable like a binary file."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing_extensions import Buffer


class DataObject(io.BufferedIOBase):
    """An object fetched from OSS: its key, size, label and a file-like view of its bytes.

    Works wherever a binary file does (``PIL.Image.open``, ``torch.load``, ``np.load``).
    :meth:`copy` returns an independent object with its own read position; it can be kept,
    read later and pickled.
    """

    def __init__(self, key: str, size: int, label: str, body: bytes, bucket: str = "") -> None:
        super().__init__()
        self._key = key
        self._size = size
        self._label = label
        self._bucket = bucket
        self._body = body
        self._pos = 0

    @property
    def key(self) -> str:
        """Object key inside the bucket, e.g. ``Img/a.png``."""
        return self._key

    @property
    def size(self) -> int:
        """Object size in bytes."""
        return self._size

    @property
    def label(self) -> str:
        """Label from the manifest; ``""`` when there is none."""
        return self._label

    @property
    def bucket(self) -> str:
        """Bucket the object was read from."""
        return self._bucket

    def read(self, size: int | None = -1) -> bytes:
        """Reads up to ``size`` bytes (all that remain when ``size`` is negative or None)."""
        self._check_open()
        start = self._pos
        end = len(self._body)
        if size is not None and size >= 0:
            end = min(end, start + size)
        self._pos = max(start, end)
        if start == 0 and end == len(self._body):
            return self._body  # bytes are immutable: the whole body needs no copy
        return self._body[start:end]

    def read1(self, size: int = -1) -> bytes:
        """Same as :meth:`read`: the body is already in memory."""
        return self.read(size)

    def readinto(self, buffer: Buffer) -> int:
        """Copies the next bytes into a writable buffer; returns how many were copied."""
        self._check_open()
        with memoryview(buffer) as view, view.cast("B") as target:
            n = min(len(target), len(self._body) - self._pos)
            if n <= 0:
                return 0
            target[:n] = memoryview(self._body)[self._pos : self._pos + n]
            self._pos += n
            return n

    def readinto1(self, buffer: Buffer) -> int:
        """Same as :meth:`readinto`."""
        return self.readinto(buffer)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Moves the read position; returns the new position."""
        self._check_open()
        if whence == io.SEEK_SET:
            target = offset
        elif whence == io.SEEK_CUR:
            target = self._pos + offset
        elif whence == io.SEEK_END:
            target = len(self._body) + offset
        else:
            raise ValueError(f"invalid whence {whence!r} (use 0, 1 or 2)")
        if target < 0:
            raise ValueError(f"negative seek position {target} in {self._describe()}")
        self._pos = target
        return target

    def tell(self) -> int:
        """The read position."""
        self._check_open()
        return self._pos

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def copy(self) -> DataObject:
        """An independent object over the same bytes, positioned at the start."""
        return DataObject(self._key, self._size, self._label, self._body, self._bucket)

    def __reduce__(self) -> tuple[Any, ...]:
        return (DataObject, (self._key, self._size, self._label, self._body, self._bucket))

    def __repr__(self) -> str:
        return f"DataObject(key={self._key!r}, size={self._size}, label={self._label!r})"

    def _describe(self) -> str:
        return f"oss://{self._bucket}/{self._key}"

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError(f"I/O operation on closed DataObject {self._describe()}")
