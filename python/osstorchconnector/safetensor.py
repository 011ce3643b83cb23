"""OssSafetensor: safetensors files in OSS, saved as a stream and loaded by range.

The format (https://huggingface.co/docs/safetensors): an 8-byte little-endian header length, a
JSON header ``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}``,
then the tensors' bytes, offsets counted from the end of the header.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import replace
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from ._client import RangeFetcher
from ._safetensors_format import (
    _DTYPES,
    _HEADER_GUESS,
    _MAX_HEADER,
    _byte_view,
    _check_little_endian,
    _Entry,
    _Header,
    _parse_header,
    _plan,
    _torch_dtypes,
    _write,
)
from .checkpoint import Connected, open_reader
from .data_object import DataObject
from .writer import ObjectWriter

if TYPE_CHECKING:
    import torch

    Device = str | int | torch.device


def _read_header(reader: DataObject, uri: str, ranges: RangeFetcher | None = None) -> _Header:
    """Reads and validates the header: its length is checked against the object's size before
    the header is read, so a corrupt length cannot cause a huge allocation.

    With ``ranges`` the read is one exact range of the first 64 KiB (the rest of a longer
    header in a second one) — for :meth:`OssSafetensor.safe_open`, which reads no data here.
    Without, it goes through ``reader``, whose first range (a whole part) then also serves the
    first tensors of a load.
    """
    _check_little_endian()
    size = reader.size
    if size < 8:
        raise ValueError(f"{uri} is not a valid safetensors file: only {size} bytes")

    def read(start: int, count: int) -> bytes:
        if ranges is None:
            reader.seek(start)
            return reader.read(count)
        return ranges(reader.bucket, reader.key, start, start + count, reader.etag).read()

    head = read(0, 8 if ranges is None else min(size, _HEADER_GUESS))
    length = int.from_bytes(head[:8], "little")
    if length > size - 8 or length > _MAX_HEADER:
        raise ValueError(
            f"{uri} is not a valid safetensors file: header length {length} "
            f"exceeds the file ({size} bytes) or the limit ({_MAX_HEADER})"
        )
    raw = head[8 : 8 + length]
    if len(raw) < length:
        raw += read(8 + len(raw), length - len(raw))
    if len(raw) != length:
        raise ValueError(f"{uri}: the object ended inside its header")
    return _parse_header(raw, uri, 8 + length, size - 8 - length)


def _empty(entry: _Entry, uri: str, device: str = "cpu") -> torch.Tensor:
    import torch

    dtype = _torch_dtypes().get(entry.dtype)
    if dtype is None:
        raise ValueError(
            f"tensor {entry.name!r} of {uri}: torch {torch.__version__} lacks dtype {entry.dtype}"
        )
    try:
        return torch.empty(entry.shape, dtype=dtype, device=device)
    except RuntimeError as e:  # e.g. an empty tensor whose other dimensions overflow
        raise ValueError(f"tensor {entry.name!r} of {uri} has shape {entry.shape}: {e}") from None


def _target(device: Device) -> torch.device:
    import torch

    return device if isinstance(device, torch.device) else torch.device(device)


def _place(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Tensors are read into CPU memory (downloads write there), then moved."""
    return tensor if device.type == "cpu" else tensor.to(device)


class OssSafeSlice:
    """One tensor of an open file, read in part: ``[a:b]`` (and ``[i]``) on the first dimension
    fetch only those rows' bytes; indices on later dimensions then apply to them."""

    def __init__(self, file: OssSafeOpen, entry: _Entry) -> None:
        self._file = file
        self._entry = entry

    def get_shape(self) -> list[int]:
        """The whole tensor's shape."""
        return list(self._entry.shape)

    def get_dtype(self) -> str:
        """The format's dtype name, e.g. ``"F32"``."""
        return self._entry.dtype

    def __getitem__(self, index: Any) -> torch.Tensor:
        parts = index if isinstance(index, tuple) else (index,)
        shape = self._entry.shape
        if not shape or not parts:
            whole = self._file._rows(self._entry, 0, shape[0] if shape else 0)
            return self._file._place(whole[index])
        first, rest = parts[0], parts[1:]
        if isinstance(first, slice):
            start, stop, step = first.indices(shape[0])
            if step < 0:
                raise ValueError(f"negative slice steps are not supported ({first})")
            count = len(range(start, stop, step))
            stop = start + (count - 1) * step + 1 if count else start
            rows = self._file._rows(self._entry, start, stop)
            return self._file._place(rows[(slice(None, None, step), *rest)].contiguous())
        if isinstance(first, numbers.Integral) and not isinstance(first, bool):
            row = int(first) + shape[0] if first < 0 else int(first)
            if not 0 <= row < shape[0]:
                raise IndexError(f"index {first} is out of range for {self._entry.name!r} {shape}")
            rows = self._file._rows(self._entry, row, row + 1)
            return self._file._place(rows[(0, *rest)].contiguous())
        # Anything else (Ellipsis, None, masks, index lists): the whole tensor, then torch.
        return self._file._place(self._file._rows(self._entry, 0, shape[0])[index])

    def __repr__(self) -> str:
        return f"OssSafeSlice({self._entry.name!r}, {self._entry.dtype}, {list(self._entry.shape)})"


class OssSafeOpen:
    """An open safetensors object: its header is read once, each tensor on demand by its own
    byte range (all pinned to the version opened). Use as a context manager, or :meth:`close`.
    """

    def __init__(self, reader: DataObject, ranges: RangeFetcher, uri: str, device: Device) -> None:
        self._reader = reader
        self._ranges = ranges
        self._uri = uri
        try:
            self._device = _target(device)
            self._header = _read_header(reader, uri, ranges)
        except BaseException:
            reader.close()
            raise

    def keys(self) -> list[str]:
        """Tensor names in header order."""
        return list(self._header.entries)

    def offset_keys(self) -> list[str]:
        """Tensor names in the order of their data in the file."""
        entries = self._header.entries.values()
        return [e.name for e in sorted(entries, key=lambda e: (e.begin, e.end))]

    def metadata(self) -> dict[str, str]:
        """The ``__metadata__`` of the file; ``{}`` when it has none."""
        return dict(self._header.metadata)

    def get_tensor(self, name: str) -> torch.Tensor:
        """The tensor ``name``, fetched by one range read of exactly its bytes.

        Raises:
            KeyError: no tensor of that name in this file.
            OssObjectChangedError: the object was replaced since it was opened.
        """
        entry = self._entry(name)
        return self._place(self._rows(entry, 0, entry.shape[0] if entry.shape else 0))

    def get_slice(self, name: str) -> OssSafeSlice:
        """A lazy view of tensor ``name``: index it (``[a:b]``) to fetch only those rows."""
        return OssSafeSlice(self, self._entry(name))

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> OssSafeOpen:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"OssSafeOpen({self._uri!r}, {len(self._header.entries)} tensors)"

    def _entry(self, name: str) -> _Entry:
        self._check_open()
        entry = self._header.entries.get(name)
        if entry is None:
            raise KeyError(f"no tensor {name!r} in {self._uri}")
        return entry

    def _check_open(self) -> None:
        if self._reader.closed:
            raise ValueError(f"safe_open of {self._uri} is closed")

    def _rows(self, entry: _Entry, start: int, stop: int) -> torch.Tensor:
        """Rows ``start:stop`` of the first dimension (the whole of a scalar when
        ``stop`` is 0 and the shape is ``[]``), read straight into a new CPU tensor's memory
        (a meta tensor for ``device="meta"``): indexed there, then :meth:`_place`-d, so only
        what was asked for moves to the device."""
        self._check_open()
        shape = (stop - start, *entry.shape[1:]) if entry.shape else ()
        if self._device.type == "meta":
            return _empty(replace(entry, shape=shape), self._uri, "meta")
        tensor = _empty(replace(entry, shape=shape), self._uri)
        row_bytes = math.prod(entry.shape[1:]) * _DTYPES[entry.dtype][0]
        if tensor.numel():
            with _byte_view(tensor) as view:
                offset = self._header.data_start + entry.begin + start * row_bytes
                reader = self._reader
                self._ranges.read_into(reader.bucket, reader.key, offset, view, reader.etag)
        return tensor

    def _place(self, tensor: torch.Tensor) -> torch.Tensor:
        return _place(tensor, self._device)


class OssSafetensor(Connected):
    """safetensors files in OSS: :meth:`save_file` streams one up as it is written,
    :meth:`load_file` and :meth:`safe_open` read it back by range.

    Better than the official connector: the header is padded to 8 bytes and tensors are
    aligned; non-contiguous, bfloat16, bool and GPU tensors save correctly; an exception while
    saving leaves the old object; an unknown name is a ``KeyError``; ``device="meta"`` works;
    ``get_slice`` fetches only the rows asked for; and a corrupt header is a ``ValueError``
    naming the object, never a crash or a huge allocation.
    """

    def save_file(
        self,
        tensors: dict[str, torch.Tensor],
        oss_uri: str,
        metadata: dict[str, str] | None = None,
    ) -> None:
        """Saves ``tensors`` (and string ``metadata``) as a safetensors object at ``oss_uri``.

        The object is replaced only when the whole file is written; on any error the upload
        is aborted and the old object stays.

        Raises:
            TypeError: metadata that is not str to str, or a value that is not a tensor
                (before anything is written).
            ValueError: a dtype safetensors has no name for, a sparse or meta tensor.
            OssError: the upload failed.
        """
        header, ordered = _plan(tensors, metadata)
        with ObjectWriter(self._factory.for_uri(oss_uri).upload(oss_uri), oss_uri) as writer:
            _write(header, ordered, writer)

    @staticmethod
    def do_save_safetensor(
        tensors: dict[str, torch.Tensor],
        obj: IO[bytes] | ObjectWriter,
        metadata: dict[str, str] | None = None,
    ) -> None:
        """Writes ``tensors`` as a safetensors file into any writable binary file ``obj``
        (raises as :meth:`save_file` does)."""
        header, ordered = _plan(tensors, metadata)
        _write(header, ordered, obj)

    def load_file(self, oss_uri: str, device: Device = "cpu") -> dict[str, torch.Tensor]:
        """Every tensor of the object, in header order: one HEAD and one read of the header,
        then the data in file order, each tensor read straight into its memory (large ones
        in parts fetched at once).

        Raises:
            ValueError: the object is not a valid safetensors file.
            OssNotFoundError: no such object.
        """
        target = _target(device)
        with open_reader(self._factory, oss_uri, self._ranges) as reader:
            meta = target.type == "meta"  # no data wanted: an exact read of the header
            header = _read_header(reader, oss_uri, self._ranges if meta else None)
            entries = sorted(header.entries.values(), key=lambda e: (e.begin, e.end))
            loaded: dict[str, torch.Tensor] = {}
            for entry in entries:
                if meta:
                    loaded[entry.name] = _empty(entry, oss_uri, "meta")
                    continue
                tensor = _empty(entry, oss_uri)
                if tensor.numel():
                    reader.seek(header.data_start + entry.begin)
                    with _byte_view(tensor) as view:
                        if reader.readinto(view) != len(view):
                            raise ValueError(f"{oss_uri}: the object ended inside {entry.name!r}")
                loaded[entry.name] = _place(tensor, target)
        return {name: loaded[name] for name in header.entries}

    def safe_open(self, oss_uri: str, device: Device = "cpu") -> OssSafeOpen:
        """Opens the object and reads its header; tensors are fetched when asked for
        (``with st.safe_open(uri) as f: w = f.get_tensor("w")``).

        Raises:
            ValueError: the object is not a valid safetensors file.
            OssNotFoundError: no such object.
        """
        return OssSafeOpen(
            open_reader(self._factory, oss_uri, self._ranges), self._ranges, oss_uri, device
        )
