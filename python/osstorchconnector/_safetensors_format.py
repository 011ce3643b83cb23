"""The safetensors format: validating tensors and laying out a file to save, and parsing and
checking the header of a file to load. No I/O beyond writing to a given file object.

https://huggingface.co/docs/safetensors
"""

from __future__ import annotations

import functools
import json
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from .writer import ObjectWriter

# What Hugging Face's reader accepts; more is a corrupt file, not a big one.
_MAX_HEADER = 100_000_000
_MAX_DIM = 2**63 - 1
# Bytes a header-only read fetches at first: most headers fit (about 100 B per tensor).
_HEADER_GUESS = 64 * 1024
# Format name → (bytes per element, torch dtype attribute). F4/F6 pack several elements per
# byte and have no plain torch dtype, so they are left out (an error names them).
_DTYPES: dict[str, tuple[int, str]] = {
    "F64": (8, "float64"),
    "F32": (4, "float32"),
    "F16": (2, "float16"),
    "BF16": (2, "bfloat16"),
    "C64": (8, "complex64"),
    "I64": (8, "int64"),
    "I32": (4, "int32"),
    "I16": (2, "int16"),
    "I8": (1, "int8"),
    "U64": (8, "uint64"),
    "U32": (4, "uint32"),
    "U16": (2, "uint16"),
    "U8": (1, "uint8"),
    "BOOL": (1, "bool"),
    "F8_E4M3": (1, "float8_e4m3fn"),
    "F8_E4M3FNUZ": (1, "float8_e4m3fnuz"),
    "F8_E5M2": (1, "float8_e5m2"),
    "F8_E5M2FNUZ": (1, "float8_e5m2fnuz"),
    "F8_E8M0": (1, "float8_e8m0fnu"),
}


@functools.cache
def _torch_dtypes() -> dict[str, torch.dtype]:
    """Format name → torch dtype, for the dtypes this torch has."""
    import torch

    found = {name: getattr(torch, attr, None) for name, (_, attr) in _DTYPES.items()}
    return {name: dtype for name, dtype in found.items() if isinstance(dtype, torch.dtype)}


@functools.cache
def _format_names() -> dict[torch.dtype, str]:
    return {dtype: name for name, dtype in _torch_dtypes().items()}


def _check_little_endian() -> None:
    # Tensor bytes are copied as they lie in memory; the format is little-endian.
    if sys.byteorder != "little":
        raise NotImplementedError("safetensors files need a little-endian host")


@dataclass(frozen=True)
class _Entry:
    """One tensor of a header; ``begin``/``end`` count from the start of the data area."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass(frozen=True)
class _Header:
    entries: dict[str, _Entry]  # in header order
    metadata: dict[str, str]
    data_start: int  # offset of the data area in the file


def _byte_view(tensor: torch.Tensor) -> memoryview:
    """The bytes of a contiguous CPU tensor as a (writable) memoryview, without a copy.

    Through a uint8 view because numpy has no bfloat16/float8 and ``.numpy()`` refuses them.
    """
    import torch

    array: Any = tensor.detach().reshape(-1).view(torch.uint8).numpy()  # a Buffer at runtime
    return memoryview(array)


# --- writing ---


def _plan(
    tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None
) -> tuple[bytes, list[torch.Tensor]]:
    """Checks everything that can be checked before a byte is written; returns the padded
    header and the tensors in data order.

    Data is ordered by element size, largest first (stable), as Hugging Face does: with the
    header padded to 8 bytes every tensor then starts aligned to its element size, which
    zero-copy readers (mmap + frombuffer) need. The header keeps the caller's order.
    """
    import torch

    _check_little_endian()
    if not isinstance(tensors, Mapping):
        raise TypeError(f"tensors must be a dict of str to torch.Tensor, not {type(tensors)}")
    header: dict[str, Any] = {}
    if metadata is not None:
        if not isinstance(metadata, Mapping):
            raise TypeError(f"metadata must be a dict of str to str, not {type(metadata)}")
        bad = [k for k, v in metadata.items() if not (isinstance(k, str) and isinstance(v, str))]
        if bad:
            raise TypeError(f"metadata keys and values must be str; not so for {bad!r}")
        header["__metadata__"] = dict(metadata)
    names = _format_names()
    for name, tensor in tensors.items():
        if not isinstance(name, str):
            raise TypeError(f"tensor names must be str, not {type(name)} ({name!r})")
        if name == "__metadata__":
            raise ValueError("'__metadata__' is reserved for the metadata, not a tensor name")
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"tensor {name!r} is a {type(tensor)}, not a torch.Tensor")
        if tensor.layout != torch.strided:
            raise ValueError(f"tensor {name!r} is {tensor.layout}; save tensor.to_dense()")
        if tensor.dtype not in names:
            raise ValueError(f"tensor {name!r} has dtype {tensor.dtype}, not in safetensors")
        if tensor.is_meta:
            raise ValueError(f"tensor {name!r} is on the meta device: it has no data")
    order = sorted(tensors, key=lambda n: -tensors[n].element_size())
    offsets, at = {}, 0
    for name in order:
        size = tensors[name].numel() * tensors[name].element_size()
        offsets[name], at = (at, at + size), at + size
    for name, tensor in tensors.items():
        header[name] = {
            "dtype": names[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": list(offsets[name]),
        }
    text = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text, [tensors[n] for n in order]


def _write_all(obj: IO[bytes] | ObjectWriter, data: memoryview) -> None:
    done = 0
    while done < len(data):
        n = obj.write(data[done:])
        if n is None:  # a file-like object that does not count: it took everything
            return
        if n <= 0:
            raise OSError(f"{obj!r} accepted no bytes")
        done += n


def _write(header: bytes, tensors: list[torch.Tensor], obj: IO[bytes] | ObjectWriter) -> None:
    """Writes the header, then each tensor's memory: one tensor at a time is moved to the CPU
    or made contiguous, so at most one tensor's copy is held, never the whole file."""
    _write_all(obj, memoryview(header))
    for tensor in tensors:
        if tensor.numel() == 0:
            continue
        t = tensor.detach().to("cpu").resolve_conj().resolve_neg().contiguous()
        with _byte_view(t) as view:
            _write_all(obj, view)


# --- reading ---


def _parse_header(raw: bytes, uri: str, data_start: int, data_len: int) -> _Header:
    """Validates a header so that loading it can neither crash nor allocate more than the file
    holds: every offset pair lies in the data area, in order, matches its shape and dtype, and
    no two tensors overlap."""

    def bad(why: str) -> ValueError:
        return ValueError(f"{uri} is not a valid safetensors file: {why}")

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        found = dict(pairs)
        if len(found) != len(pairs):
            twice = sorted(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
            raise bad(f"duplicate keys in a JSON object: {twice}")
        return found

    try:
        doc = json.loads(raw.decode("utf-8"), object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise bad(f"the header is not JSON ({e})") from None
    if not isinstance(doc, dict):
        raise bad(f"the header is a JSON {type(doc).__name__}, not an object")
    metadata = doc.pop("__metadata__", {})
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise bad("__metadata__ is not an object of strings")

    def is_int(v: Any, top: int = _MAX_DIM) -> bool:
        return type(v) is int and 0 <= v <= top

    entries: dict[str, _Entry] = {}
    for name, info in doc.items():
        if not isinstance(info, dict):
            raise bad(f"the entry of tensor {name!r} is not an object")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if not isinstance(dtype, str) or dtype not in _DTYPES:
            raise bad(f"tensor {name!r} has dtype {dtype!r}, not one this reader knows")
        if not isinstance(shape, list) or not all(is_int(d) for d in shape):
            raise bad(f"tensor {name!r} has shape {shape!r}")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(is_int(o, data_len) for o in offsets)
            or offsets[0] > offsets[1]
        ):
            raise bad(f"tensor {name!r} has data_offsets {offsets!r} (data area: {data_len} B)")
        begin, end = offsets
        if end - begin != _span(shape, _DTYPES[dtype][0], data_len):
            raise bad(f"tensor {name!r} spans {end - begin} bytes, not what {dtype} {shape} needs")
        entries[name] = _Entry(name, dtype, tuple(shape), begin, end)
    previous: _Entry | None = None
    for entry in sorted(entries.values(), key=lambda e: (e.begin, e.end)):
        if entry.begin == entry.end:
            continue  # an empty tensor overlaps nothing
        if previous is not None and entry.begin < previous.end:
            raise bad(f"tensors {previous.name!r} and {entry.name!r} overlap")
        previous = entry
    return _Header(entries, metadata, data_start)


def _span(shape: list[int], itemsize: int, limit: int) -> int | None:
    """Bytes of a tensor of ``shape``; None past ``limit`` (computed no further: a hostile
    header could list a million huge dimensions). An empty tensor's other dimensions must
    still fit torch's 64-bit sizes."""
    empty = 0 in shape
    total, top = itemsize, _MAX_DIM if empty else limit
    for dim in shape:
        total *= max(dim, 1)
        if total > top:
            return None
    return 0 if empty else total
