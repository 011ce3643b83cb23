"""The tar index file of the official connector: reading and writing it byte for byte.

An index lists where each regular-file member of a tar archive starts, in 512-byte blocks, so a
dataset can fetch member i with one ranged GET of blocks ``[b_i, b_{i+1})``. Layout (all
little-endian), as the official 1.2.3 writes it:

- a 512-byte header: magic ``TarIdx\\0\\0``; the bytes ``01 00 01 06`` (every file has them;
  plausibly version 1.0, zlib, level 6); 8 zero bytes; u64 length of the compressed body; u64
  entry count N (members + 1); u32 CRC of the compressed body; zeros; and at 0x1FC a u32 CRC of
  the 512 header bytes taken with that field zeroed;
- the body: a zlib stream (level 6) of N u32 block deltas. Their prefix sums are the members'
  first blocks, counting any pax ``x`` / GNU ``L`` header before a member as its first, and
  last the block just past the last entry of the archive.

Both CRCs are CRC-32C (Castagnoli) with the register starting at 0 and no final XOR, not the
usual ~0 / ~0. Python has no CRC-32C, so it is computed here: indexes are small (a few bytes
per member once compressed), so a byte-at-a-time table is fast enough.
"""

from __future__ import annotations

import itertools
import struct
import sys
import zlib
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

from .exceptions import OssFormatError

BLOCK_SIZE = 512
HEADER_SIZE = 512
MAGIC = b"TarIdx\0\0"
# Seen in every index the official wrote; a file with other bytes is a format we do not know.
FORMAT_TAG = b"\x01\x00\x01\x06"
_ZLIB_LEVEL = 6
# magic, format tag, 8 reserved bytes, body length, entry count, body CRC.
_FIELDS = struct.Struct("<8s4s8xQQI")
_HEADER_CRC_AT = 0x1FC
_DELTA_LIMIT = 2**32
# Deflate cannot expand data by more than about 1032:1; a count that needs more is corrupt, and
# checking it first keeps a hostile count from sizing a huge allocation.
_MAX_DEFLATE_RATIO = 1100

_CRC32C_POLY = 0x82F63B78  # Castagnoli, bit-reversed


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _CRC32C_POLY if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-32C of ``data`` continuing from register value ``crc``, without final XOR.

    ``crc=0`` is the index file's variant; the standard CRC-32C is
    ``crc32c(data, 0xFFFFFFFF) ^ 0xFFFFFFFF``.
    """
    table = _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


@dataclass(frozen=True)
class IndexHeader:
    """The fields of an index file's first 512 bytes, checked."""

    body_length: int  # bytes of the zlib body that follows the header
    entry_count: int  # N: members + 1
    body_crc: int


@dataclass(frozen=True, eq=False)
class TarIndex:
    """Where each member of a tar archive lies: member i spans blocks
    ``[blocks[i], blocks[i + 1])``; ``len()`` is the number of members."""

    source: str  # the index file's path or URI, for messages
    blocks: array[int]  # N block numbers ('Q'), non-decreasing

    def __len__(self) -> int:
        return len(self.blocks) - 1

    def byte_range(self, first: int, stop: int | None = None) -> tuple[int, int]:
        """Byte offsets ``(start, end)`` covering members ``first`` to ``stop - 1``
        (just ``first`` when ``stop`` is None): headers, data and padding."""
        stop = first + 1 if stop is None else stop
        if not 0 <= first < stop <= len(self):
            raise IndexError(
                f"members [{first}, {stop}) are out of range: {self.source} lists {len(self)}"
            )
        return self.blocks[first] * BLOCK_SIZE, self.blocks[stop] * BLOCK_SIZE


def _format_error(source: str, why: str) -> OssFormatError:
    return OssFormatError(f"{source} is not a valid tar index: {why}")


def _little_endian_u32(values: array[int]) -> bytes:
    if sys.byteorder == "big":
        values = array("I", values)
        values.byteswap()
    return values.tobytes()


def encode_index(member_blocks: Sequence[int], end_block: int) -> bytes:
    """The index file for members starting at ``member_blocks`` (ascending) in an archive whose
    last entry ends at ``end_block``; byte-identical to the official's for the same archive.

    Raises:
        ValueError: the blocks are not ascending, or two are 2**32 blocks (2 TiB) or more
            apart, which the format cannot hold.
    """
    starts = [*member_blocks, end_block]
    deltas = array("I", [0] * len(starts))
    previous = 0
    for i, block in enumerate(starts):
        delta = block - previous
        # A member has at least its header block; the first may start at block 0.
        if delta < (1 if i else 0) or delta >= _DELTA_LIMIT:
            raise ValueError(f"tar index entry {i} (block {block}) after block {previous}")
        deltas[i] = delta
        previous = block
    body = zlib.compress(_little_endian_u32(deltas), _ZLIB_LEVEL)
    header = bytearray(HEADER_SIZE)
    _FIELDS.pack_into(header, 0, MAGIC, FORMAT_TAG, len(body), len(starts), crc32c(body))
    struct.pack_into("<I", header, _HEADER_CRC_AT, crc32c(header))
    return bytes(header) + body


def decode_index_header(data: bytes | memoryview, source: str) -> IndexHeader:
    """Checks the first 512 bytes of an index file (magic, format, header CRC, counts).

    Raises:
        OssFormatError: naming ``source`` and what is wrong.
    """
    if len(data) < HEADER_SIZE:
        raise _format_error(source, f"{len(data)} bytes, shorter than the 512-byte header")
    header = bytearray(data[:HEADER_SIZE])
    magic, tag, body_length, count, body_crc = _FIELDS.unpack_from(header)
    if magic != MAGIC:
        raise _format_error(source, f"magic is {magic!r}, not {MAGIC!r}")
    if tag != FORMAT_TAG:
        raise _format_error(source, f"format bytes are {tag.hex(' ')}, not {FORMAT_TAG.hex(' ')}")
    (stored_crc,) = struct.unpack_from("<I", header, _HEADER_CRC_AT)
    header[_HEADER_CRC_AT : _HEADER_CRC_AT + 4] = bytes(4)
    if crc32c(header) != stored_crc:
        raise _format_error(source, f"header CRC is {crc32c(header):08X}, stored {stored_crc:08X}")
    if count < 1:
        raise _format_error(source, "the entry count is 0 (even an empty archive has 1)")
    if 4 * count > _MAX_DEFLATE_RATIO * body_length + 64:
        raise _format_error(source, f"{count} entries cannot fit a {body_length}-byte body")
    return IndexHeader(body_length, count, body_crc)


def decode_index_body(header: IndexHeader, body: bytes | memoryview, source: str) -> TarIndex:
    """Checks and expands the body that follows ``header`` (exactly ``header.body_length``
    bytes).

    Raises:
        OssFormatError: naming ``source`` and what is wrong.
    """
    if len(body) != header.body_length:
        raise _format_error(source, f"body is {len(body)} bytes, header says {header.body_length}")
    if crc32c(body) != header.body_crc:
        raise _format_error(source, f"body CRC is {crc32c(body):08X}, stored {header.body_crc:08X}")
    expected = 4 * header.entry_count
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(body, expected)
        if len(raw) == expected and not inflater.eof:
            # Stopped at the size limit: finish the stream, which must hold nothing more.
            raw += inflater.decompress(inflater.unconsumed_tail, 1)
    except zlib.error as e:
        raise _format_error(source, f"the body does not inflate ({e})") from None
    if len(raw) != expected or not inflater.eof or inflater.unused_data:
        raise _format_error(source, f"the body does not inflate to {header.entry_count} entries")
    deltas = array("I")
    deltas.frombytes(raw)
    if sys.byteorder == "big":
        deltas.byteswap()
    try:
        empty = deltas.index(0, 1)
    except ValueError:
        pass
    else:
        raise _format_error(source, f"entry {empty} is 0 blocks after the one before it")
    return TarIndex(source, array("Q", itertools.accumulate(deltas)))


def decode_index(data: bytes | memoryview, source: str) -> TarIndex:
    """Reads a whole index file.

    Raises:
        OssFormatError: naming ``source`` and what is wrong.
    """
    header = decode_index_header(data, source)
    if len(data) != HEADER_SIZE + header.body_length:
        raise _format_error(
            source, f"{len(data)} bytes, header says {HEADER_SIZE + header.body_length}"
        )
    return decode_index_body(header, memoryview(data)[HEADER_SIZE:], source)
