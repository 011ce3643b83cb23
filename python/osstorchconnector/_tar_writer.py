"""Writing a tar archive the way the official ``gen_tar_archive`` does, byte for byte.

What it writes (seen in its archives): one POSIX ustar header per regular file with only the
name, the size, the checksum, typeflag '0' and the magic ``ustar\\0`` ``00`` set; mode, uid,
gid, mtime, user and group names are left as NUL bytes (read as 0). The size is 11 octal
digits right-aligned in spaces plus a space (``"%11o "``), the checksum six octal digits
right-aligned in spaces, a space and a NUL (``"%6o \\0"``). A name of 100 bytes or more does
not use the ustar prefix field: a pax ``x`` header (empty name) carrying ``path=`` comes
first and the ustar header's name is left empty. A file of 8 GiB or more (too big for 11
octal digits) gets a pax ``size=`` record and a NUL size field. Data is padded to 512 bytes;
the archive ends with two zero blocks and no padding to a 10 KiB record.

Two official bugs are not copied: it writes only the first 512 bytes of the pax data (so
names over about 500 bytes make an archive no reader, its own included, can read), and with a
long name it drops the ``size=`` record of a file of 8 GiB or more.
"""

from __future__ import annotations

import contextlib
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import BinaryIO

BLOCK_SIZE = 512
END_OF_ARCHIVE = bytes(2 * BLOCK_SIZE)
_NAME_FIELD = 100
_SIZE_LIMIT = 8**11  # "%11o" holds sizes below 8 GiB
_COPY_CHUNK = 1 << 20


@dataclass(frozen=True)
class SourceFile:
    """One file to archive: its member name, its size, and how to open its bytes."""

    name: str
    size: int
    open: Callable[[], contextlib.AbstractContextManager[BinaryIO]]


def _ustar_header(name: bytes, size: int | None, typeflag: bytes) -> bytes:
    header = bytearray(BLOCK_SIZE)
    header[: len(name)] = name
    if size is not None:
        header[124:136] = b"%11o " % size
    header[148:156] = b" " * 8  # summed as spaces
    header[156:157] = typeflag
    header[257:265] = b"ustar\x0000"
    header[148:156] = b"%6o \0" % sum(header)
    return bytes(header)


def _pax_record(key: bytes, value: bytes) -> bytes:
    """``"<length> <key>=<value>\\n"``, where the length counts its own digits."""
    rest = b" %s=%s\n" % (key, value)
    length = len(rest) + len(str(len(rest)))
    if len(str(length)) > len(str(len(rest))):
        length += 1
    return b"%d%s" % (length, rest)


def _padding(size: int) -> bytes:
    return bytes(-size % BLOCK_SIZE)


def member_headers(name: str, size: int) -> bytes:
    """The header blocks the official writes before a regular file's data."""
    raw_name = name.encode("utf-8", "surrogateescape")
    records = b""
    if len(raw_name) >= _NAME_FIELD:  # the field needs room for its NUL, as the official does
        records += _pax_record(b"path", raw_name)
        raw_name = b""
    if size >= _SIZE_LIMIT:
        records += _pax_record(b"size", b"%d" % size)
    header = _ustar_header(raw_name, size if size < _SIZE_LIMIT else None, b"0")
    if not records:
        return header
    return _ustar_header(b"", len(records), b"x") + records + _padding(len(records)) + header


def _copy(source: SourceFile, sink: BinaryIO) -> None:
    left = source.size
    with source.open() as data:
        while left:
            chunk = data.read(min(left, _COPY_CHUNK))
            if not chunk:
                raise OSError(
                    f"{source.name} shrank while it was archived: {source.size - left} of "
                    f"{source.size} bytes read"
                )
            sink.write(chunk)
            left -= len(chunk)


def write_archive(sink: BinaryIO, files: Iterable[SourceFile]) -> array[int]:
    """Writes ``files`` as members in the given order, then the end of archive.

    Returns:
        The first block of each member and, last, the block where the members end: the blocks
        ``_tar_index.encode_index`` takes.
    """
    blocks = array("Q")
    block = 0
    for source in files:
        blocks.append(block)
        headers = member_headers(source.name, source.size)
        sink.write(headers)
        _copy(source, sink)
        sink.write(_padding(source.size))
        block += len(headers) // BLOCK_SIZE + -(-source.size // BLOCK_SIZE)
    blocks.append(block)
    sink.write(END_OF_ARCHIVE)
    return blocks
