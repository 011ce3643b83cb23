"""DataObject: one object of a dataset, readable like a binary file."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from ._body import Body, BytesBody, PartSource, RangeReader
from ._core import read_via
from .exceptions import OssError

if TYPE_CHECKING:
    from typing_extensions import Buffer


class DataObject(io.BufferedIOBase):
    """An object fetched from OSS: its key, size, label and a file-like view of its bytes.

    Works wherever a binary file does (``PIL.Image.open``, ``torch.load``, ``np.load``).
    Small objects arrive whole. A large object arrives as its first part; reading on takes the
    next parts from the dataset's pipeline while the iterator is still on this object, and
    fetches byte ranges directly afterwards, so memory stays bounded and the object stays
    readable after the loop has moved on. :meth:`copy` returns an independent object with its own
    read position that can be kept, read later and pickled. Every byte comes from the version
    first read (:attr:`etag`): if the object is replaced meanwhile, a later read raises
    :class:`~osstorchconnector.OssObjectChangedError` instead of mixing two versions.
    """

    def __init__(
        self,
        key: str,
        size: int,
        label: str,
        body: Body | bytes,
        bucket: str = "",
        *,
        etag: str = "",
        rest: PartSource | None = None,
        ranges: RangeReader | None = None,
    ) -> None:
        # No super().__init__(): io's base classes set nothing up, and this runs per object.
        self._etag = etag
        self._key = key
        self._size = size
        self._label = label
        self._bucket = bucket
        # the bytes held now, from offset _chunk_start
        self._chunk: Body = BytesBody(body) if isinstance(body, bytes) else body
        self._chunk_start = 0
        self._rest = rest
        self._rest_next = len(body)  # offset the next streamed part starts at
        self._ranges = ranges
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

    @property
    def etag(self) -> str:
        """ETag of the version read; ``""`` when unknown (a hand-made object)."""
        return self._etag

    def read(self, size: int | None = -1) -> bytes:
        """Reads up to ``size`` bytes (all that remain when ``size`` is negative or None)."""
        if self.closed:
            self._check_open()
        pos = self._pos
        remaining = self._size - pos
        if size is not None and 0 <= size < remaining:
            remaining = size
        if remaining <= 0:
            return b""
        offset = pos - self._chunk_start
        chunk = self._chunk
        if offset >= 0 and offset + remaining <= len(chunk):
            self._pos = pos + remaining
            return chunk.read(offset, remaining)
        if pos == 0 and remaining == self._size and self._rest is not None:
            whole = self._rest.read_whole()
            if whole is not None:
                self._rest = None
                self._chunk, self._chunk_start = BytesBody(whole), 0
                self._rest_next = self._pos = self._size
                return whole
        # Spans parts: each is copied once, straight into the result.
        return read_via(remaining, self.readinto)

    def read1(self, size: int = -1) -> bytes:
        """Same as :meth:`read`."""
        return self.read(size)

    def readinto(self, buffer: Buffer) -> int:
        """Copies the next bytes into a writable buffer; returns how many were copied."""
        self._check_open()
        with memoryview(buffer) as view, view.cast("B") as target:
            total = min(len(target), max(0, self._size - self._pos))
            done = 0
            while done < total:
                offset = self._pos - self._chunk_start
                if not 0 <= offset < len(self._chunk):
                    if self._read_rest_into(target, done, total):
                        return total
                    if not self._take_streamed(self._pos):
                        if self._read_ranges_into(target, done, total):
                            return total
                        self._load_range(self._pos)
                    offset = self._pos - self._chunk_start
                n = self._chunk.readinto(offset, target[done:total])
                done += n
                self._pos += n
            return done

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
            target = self._size + offset
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
        """An independent object over the same bytes, positioned at the start.

        The copy takes over the object's place in the stream (the original reads by range from
        then on), so copying in a transform costs no second download.
        """
        # Made from this object's state at once rather than through __init__: a transform
        # copies every object of a dataset.
        dup = DataObject.__new__(DataObject)
        dup.__dict__.update(self.__dict__)
        dup._pos = 0
        self._rest = None
        return dup

    def __reduce__(self) -> tuple[Any, ...]:
        # The stream cannot cross processes; a whole body travels, a part is re-read by range.
        whole = self._chunk_start == 0 and len(self._chunk) == self._size
        body = self._chunk.read() if whole else b""
        return (
            _restore,
            (self._key, self._size, self._label, body, self._bucket, self._etag, self._ranges),
        )

    def __repr__(self) -> str:
        return f"DataObject(key={self._key!r}, size={self._size}, label={self._label!r})"

    def _read_rest_into(self, target: memoryview, start: int, end: int) -> bool:
        """Reads everything from the position to the object's end into ``target[start:end]``
        when that is exactly how much is left and the stream is still on this object: parts not
        yet fetched then go straight into ``target``, with no copy on the way."""
        rest = self._rest
        pos = self._pos
        if rest is None or pos != self._rest_next or end - start != self._size - pos:
            return False
        # `with`: the slice is released even when the read raises (read_via checks for views).
        with target[start:end] as piece:
            if not rest.read_rest_into(pos, piece):
                return False
        self._rest = None
        self._rest_next = self._pos = self._size
        return True

    def _read_ranges_into(self, target: memoryview, start: int, end: int) -> bool:
        """Reads ``target[start:end]`` from the position by range, its parts fetched at once,
        when the stream is done with this object and more than one part is wanted."""
        if self._rest is not None or self._ranges is None:
            return False
        if end - start <= self._ranges.part_size:
            return False  # one range, kept as the chunk for the reads that follow
        with target[start:end] as piece:
            self._ranges.read_into(self._bucket, self._key, self._pos, piece, self._etag)
        self._pos += end - start
        return True

    def _take_streamed(self, pos: int) -> bool:
        """Makes the chunk cover ``pos`` (< size) from the stream while it is still on this
        object; False once the stream has nothing more for it."""
        while self._rest is not None and pos >= self._rest_next:
            part = self._rest.next_part()
            if part is None:
                self._rest = None
                break
            offset, data = part
            if isinstance(data, bytes):
                data = BytesBody(data)
            self._rest_next = offset + len(data)
            if pos < self._rest_next:
                self._chunk, self._chunk_start = data, offset
                return True
        return False

    def _load_range(self, pos: int) -> Body:
        """Makes the chunk cover ``pos`` (< size) by range: one part, or — when reads go on
        sequentially from the chunk before — twice the chunk before, up to the reader's
        readahead, its parts fetched at once."""
        ranges = self._ranges
        if ranges is None:
            raise OssError(
                f"{self._describe()}: byte {pos} is no longer available from the stream",
                bucket=self._bucket,
                key=self._key,
            )
        span = ranges.part_size
        if pos == self._chunk_start + len(self._chunk) and len(self._chunk) > 0:
            span = max(span, min(2 * len(self._chunk), ranges.readahead))
        end = min(self._size, pos + span)
        data: Body
        if end - pos > ranges.part_size:

            def fill(window: Buffer) -> int:
                ranges.read_into(self._bucket, self._key, pos, window, self._etag)
                return end - pos

            data = BytesBody(read_via(end - pos, fill))
        else:
            data = ranges(self._bucket, self._key, pos, end, self._etag)
        if not data:
            raise OssError(
                f"{self._describe()}: expected {self._size} bytes, object ends before {pos}",
                bucket=self._bucket,
                key=self._key,
            )
        self._chunk, self._chunk_start = data, pos
        return data

    def _describe(self) -> str:
        scheme = self._ranges.protocol if self._ranges is not None else "oss"
        return f"{scheme}://{self._bucket}/{self._key}"

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError(f"I/O operation on closed DataObject {self._describe()}")


def _restore(
    key: str,
    size: int,
    label: str,
    body: bytes,
    bucket: str,
    etag: str,
    ranges: RangeReader | None,
) -> DataObject:
    return DataObject(key, size, label, body, bucket, etag=etag, ranges=ranges)
