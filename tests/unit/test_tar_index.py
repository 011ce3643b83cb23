"""The tar index file codec against index files the official connector wrote
(`tests/fixtures/tar/*.idx`, made by `make_fixtures.py`), and its errors on corrupt files."""

from __future__ import annotations

import struct
import tarfile
import zlib
from pathlib import Path

import pytest

from osstorchconnector._tar_index import (
    FORMAT_TAG,
    MAGIC,
    TarIndex,
    crc32c,
    decode_index,
    decode_index_body,
    decode_index_header,
    encode_index,
)
from osstorchconnector.exceptions import OssError, OssFormatError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tar"
OFFICIAL_INDEXES = sorted(p.name for p in FIXTURES.glob("*.idx"))
TARS = sorted(p.name for p in FIXTURES.glob("*.tar"))


def test_fixtures_are_there() -> None:
    assert {"gnu.tar", "pax.tar", "official_tree.tar", "empty.tar"} <= set(TARS)
    assert "many.tar.idx" in OFFICIAL_INDEXES


def test_crc32c_is_castagnoli() -> None:
    # The standard CRC-32C check value (RFC 3720, B.4) once the usual ~0 init/xorout is added.
    assert crc32c(b"123456789", 0xFFFFFFFF) ^ 0xFFFFFFFF == 0xE3069283
    assert crc32c(b"") == 0
    assert crc32c(b"456789", crc32c(b"123")) == crc32c(b"123456789")


@pytest.mark.parametrize("name", OFFICIAL_INDEXES)
def test_official_index_reencodes_byte_for_byte(name: str) -> None:
    data = (FIXTURES / name).read_bytes()
    index = decode_index(data, name)
    assert encode_index(index.blocks[:-1], index.blocks[-1]) == data


@pytest.mark.parametrize("tar_name", [n for n in TARS if n != "empty.tar"])
def test_official_index_matches_tarfile(tar_name: str) -> None:
    """Member offsets in the official's index agree with what Python's `tarfile` finds."""
    index = decode_index((FIXTURES / f"{tar_name}.idx").read_bytes(), tar_name)
    with tarfile.open(FIXTURES / tar_name) as archive:
        regular = [m for m in archive if m.isreg()]
        end = archive.offset  # just past the last entry
    assert len(index) == len(regular) > 0
    # tarfile's offset is the member's first header, pax/GNU long-name headers included.
    assert list(index.blocks[:-1]) == [m.offset // 512 for m in regular]
    assert index.blocks[-1] * 512 == end
    for i, member in enumerate(regular):
        start, stop = index.byte_range(i)
        assert start == member.offset
        assert stop >= member.offset_data + member.size


def test_empty_archive_index() -> None:
    data = (FIXTURES / "empty.tar.idx").read_bytes()
    index = decode_index(data, "empty.tar.idx")
    assert len(index) == 0 and list(index.blocks) == [0]
    assert encode_index([], 0) == data
    assert len(data) == 524  # header + the 12-byte zlib stream of one zero u32


def test_header_fields_as_documented() -> None:
    data = (FIXTURES / "gnu.tar.idx").read_bytes()
    assert data[:8] == b"TarIdx\0\0" == MAGIC and data[8:12] == bytes([1, 0, 1, 6]) == FORMAT_TAG
    body_length, count, body_crc = struct.unpack_from("<QQI", data, 0x14)
    assert body_length == len(data) - 512 and data[512:514] == b"\x78\x9c"
    header = decode_index_header(data, "gnu.tar.idx")
    assert (header.body_length, header.entry_count, header.body_crc) == (
        body_length,
        count,
        body_crc,
    )
    deltas = struct.unpack(f"<{count}I", zlib.decompress(data[512:]))
    index = decode_index_body(header, data[512:], "gnu.tar.idx")
    assert index.blocks[0] == deltas[0] == 1  # GNU tar's "./" entry takes block 0


def test_byte_range() -> None:
    index = decode_index((FIXTURES / "gnu.tar.idx").read_bytes(), "gnu.tar.idx")
    blocks = list(index.blocks)
    assert index.byte_range(0) == (blocks[0] * 512, blocks[1] * 512)
    assert index.byte_range(2, 5) == (blocks[2] * 512, blocks[5] * 512)
    assert index.byte_range(0, len(index)) == (blocks[0] * 512, blocks[-1] * 512)
    for first, stop in [(len(index), None), (-1, None), (3, 3), (0, len(index) + 1)]:
        with pytest.raises(IndexError, match="out of range"):
            index.byte_range(first, stop)


def test_encode_rejects_what_the_format_cannot_hold() -> None:
    with pytest.raises(ValueError, match="after block"):
        encode_index([0, 3, 3], 5)  # a member of no blocks
    with pytest.raises(ValueError, match="after block"):
        encode_index([0, 3], 3)
    with pytest.raises(ValueError, match="after block"):
        encode_index([0], 2**32)  # a delta needs more than a u32
    assert len(decode_index(encode_index([5], 5 + 2**32 - 1), "x")) == 1


def _with_crcs(fields: bytes, body: bytes) -> bytes:
    """An index whose header and body CRCs are right, whatever the fields say."""
    header = bytearray(512)
    header[: len(fields)] = fields
    struct.pack_into("<I", header, 0x24, crc32c(body))
    struct.pack_into("<I", header, 0x1FC, crc32c(header))
    return bytes(header) + body


def _fields(body_length: int, count: int) -> bytes:
    return MAGIC + FORMAT_TAG + bytes(8) + struct.pack("<QQ", body_length, count)


def _corrupt_cases() -> list[tuple[str, bytes, str]]:
    good = (FIXTURES / "gnu.tar.idx").read_bytes()
    flipped_body = bytearray(good)
    flipped_body[-3] ^= 0x40
    flipped_header = bytearray(good)
    flipped_header[0x100] = 1  # a reserved byte: only the header CRC notices
    not_zlib = b"not a zlib stream"
    short = zlib.compress(struct.pack("<3I", 1, 2, 3), 6)
    zero_delta = zlib.compress(struct.pack("<3I", 1, 0, 3), 6)
    return [
        ("bad magic", b"TarIdy\0\0" + good[8:], "magic"),
        ("unknown format", good[:8] + b"\x02\x00\x01\x06" + good[12:], "format bytes"),
        ("header CRC", bytes(flipped_header), "header CRC"),
        ("body CRC", bytes(flipped_body), "body CRC"),
        ("truncated body", good[:-5], "header says"),
        ("trailing bytes", good + b"\0", "header says"),
        ("truncated header", good[:300], "shorter than the 512-byte header"),
        ("empty file", b"", "shorter than the 512-byte header"),
        ("zero entries", _with_crcs(_fields(len(short), 0), short), "entry count is 0"),
        ("absurd count", _with_crcs(_fields(len(short), 2**40), short), "cannot fit"),
        ("not zlib", _with_crcs(_fields(len(not_zlib), 3), not_zlib), "does not inflate"),
        ("too few entries", _with_crcs(_fields(len(short), 4), short), "does not inflate"),
        ("too many entries", _with_crcs(_fields(len(short), 2), short), "does not inflate"),
        ("zero delta", _with_crcs(_fields(len(zero_delta), 3), zero_delta), "entry 1 is 0"),
    ]


@pytest.mark.parametrize(("data", "why"), [c[1:] for c in _corrupt_cases()],
                         ids=[c[0] for c in _corrupt_cases()])  # fmt: skip
def test_corrupt_index_raises_naming_the_file(data: bytes, why: str) -> None:
    with pytest.raises(OssFormatError, match=why) as caught:
        decode_index(data, "oss://bucket/train.tar.idx")
    assert str(caught.value).startswith("oss://bucket/train.tar.idx is not a valid tar index: ")
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, OssError)


def test_tar_index_len_and_blocks() -> None:
    index = decode_index(encode_index([0, 1, 4], 9), "x")
    assert isinstance(index, TarIndex) and len(index) == 3
    assert list(index.blocks) == [0, 1, 4, 9] and index.blocks.typecode == "Q"
