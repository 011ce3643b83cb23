"""Tar header parsing, checked against Python's `tarfile` and against the indexes the official
connector wrote for the same archives (`tests/fixtures/tar`, made by `make_fixtures.py`)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from fixtures.tar.fixture_specs import write_sparse_archive

from osstorchconnector._tar_format import (
    ReadAt,
    index_blocks,
    iter_entries,
    parse_member,
    read_entry,
    scan_members,
)
from osstorchconnector._tar_index import decode_index, encode_index
from osstorchconnector.exceptions import OssFormatError
from osstorchconnector.tar_archive import generate_tar_archive, index_local_archive

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tar"
TARS = sorted(p.name for p in FIXTURES.glob("*.tar"))


def _key(tar_name: str) -> str:
    """The key a dataset reports for a member `tarfile` calls `tar_name`."""
    return tar_name[2:] if tar_name.startswith("./") else tar_name


def _reader(data: bytes) -> ReadAt:
    return lambda offset, size: data[offset : offset + size]


def _regular_members(path: Path) -> list[tuple[str, int, int, int, bytes]]:
    """(key, header offset, data offset, size, content) of each file, as `tarfile` reads them."""
    found = []
    with tarfile.open(path) as archive:
        for member in archive:
            if member.isreg():
                content = archive.extractfile(member)
                assert content is not None
                found.append(
                    (
                        _key(member.name),
                        member.offset,
                        member.offset_data,
                        member.size,
                        content.read(),
                    )
                )
    return found


@pytest.mark.parametrize("tar_name", TARS)
def test_our_index_equals_the_officials(tar_name: str, tmp_path: Path) -> None:
    official = (FIXTURES / f"{tar_name}.idx").read_bytes()
    assert index_local_archive(str(FIXTURES / tar_name)) == official
    index_path = tmp_path / "out.idx"
    assert (
        generate_tar_archive("", "", "", str(FIXTURES / tar_name), str(index_path), "", True) == 0
    )
    assert index_path.read_bytes() == official


def test_index_of_many_members_equals_the_officials(tmp_path: Path) -> None:
    """3000 entries, sizes up to 16 MiB, long names: a long zlib body with varied deltas."""
    archive = tmp_path / "many.tar"
    write_sparse_archive(archive)
    assert index_local_archive(str(archive)) == (FIXTURES / "many.tar.idx").read_bytes()


@pytest.mark.parametrize("tar_name", [n for n in TARS if n != "empty.tar"])
def test_members_match_tarfile(tar_name: str) -> None:
    data = (FIXTURES / tar_name).read_bytes()
    expected = _regular_members(FIXTURES / tar_name)
    scanned = list(scan_members(_reader(data), tar_name, len(data)))
    assert [(e.name, e.header_block * 512, e.data_offset, e.size) for e in scanned] == [
        x[:4] for x in expected
    ]
    assert {e.typeflag for e in scanned} <= {b"0", b"7", b"\0"}


@pytest.mark.parametrize("tar_name", [n for n in TARS if n != "empty.tar"])
def test_parse_member_on_each_indexed_range(tar_name: str) -> None:
    """What a dataset does: a ranged read of member i per the official's index, then parse."""
    data = (FIXTURES / tar_name).read_bytes()
    index = decode_index((FIXTURES / f"{tar_name}.idx").read_bytes(), tar_name)
    expected = _regular_members(FIXTURES / tar_name)
    assert len(index) == len(expected)
    for i, (name, _, _, size, content) in enumerate(expected):
        start, end = index.byte_range(i)
        buf = memoryview(data)[start:end]
        entry = parse_member(buf, start, tar_name)
        assert (entry.name, entry.size) == (name, size)
        assert bytes(buf[entry.data_offset - start :][: entry.size]) == content


def test_names_as_a_dataset_reports_them() -> None:
    names = {e.name for e in scan_members(_reader((FIXTURES / "gnu.tar").read_bytes()), "g")}
    assert "a.txt" in names and "sub/h\u00e9llo-\u65e5\u672c.txt" in names
    assert "sub/" + "l" * 115 + ".txt" in names  # from a GNU 'L' header
    data = _tar(
        [("/abs/file", b"x"), ("./rel", b"y"), ("././twice", b"z"), ("a" * 60 + "/b" * 50, b"")]
    )
    assert [e.name for e in scan_members(_reader(data), "t")] == [
        "/abs/file",  # a leading "/" stays
        "rel",
        "./twice",  # only one "./" goes
        "a" * 60 + "/b" * 50,  # ustar prefix field + name
    ]


def _tar(members: list[tuple[str, bytes]], fmt: int = tarfile.USTAR_FORMAT) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as archive:
        for name, content in members:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return out.getvalue()


def test_large_sizes_base256_and_pax() -> None:
    """Sizes of 8 GiB and more: GNU base-256 and pax `size=` (the official reads base-256 as 0
    and so mis-indexes such archives; the right reading is tarfile's)."""
    for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        info = tarfile.TarInfo("big.bin")
        info.size = 9 * 2**30 + 7
        headers = info.tobuf(format=fmt)
        entry = read_entry(_reader(headers), 0, "big.tar")
        assert entry is not None
        assert (entry.name, entry.size, entry.data_offset) == ("big.bin", info.size, len(headers))
        assert entry.end_block == len(headers) // 512 + -(-info.size // 512)


def test_global_header_counts_as_the_next_members_start() -> None:
    """A pax `g` header is skipped but, like `x`, belongs to the entry after it: the official
    indexes the first member of such an archive at block 0."""
    out = io.BytesIO()
    with tarfile.open(
        fileobj=out, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"c": "d"}
    ) as t:
        for name in ("x1", "x2"):
            info = tarfile.TarInfo(name)
            info.size = 10
            t.addfile(info, io.BytesIO(b"0123456789"))
    data = out.getvalue()
    starts, end = index_blocks(_reader(data), "g.tar")
    assert (starts, end) == ([0, 4], 6)
    entry = parse_member(data[: 4 * 512], 0, "g.tar")
    assert (entry.name, entry.size, entry.data_offset) == ("x1", 10, 3 * 512)


def test_which_typeflags_are_files() -> None:
    entries = list(iter_entries(_reader((FIXTURES / "types.tar").read_bytes()), "types.tar"))
    assert [(e.typeflag, e.is_regular) for e in entries] == [
        (b"0", True),
        (b"7", True),
        (b"6", False),
        (b"3", False),
        (b"\0", True),
        (b"5", False),
        (b"2", False),
    ]


def _with_type(kind: bytes, size: int) -> bytes:
    info = tarfile.TarInfo("odd")
    header = bytearray(info.tobuf(format=tarfile.USTAR_FORMAT))
    header[156:157] = kind
    header[124:136] = b"%011o\0" % size
    return _fix_checksum(header)


@pytest.mark.parametrize("kind", [b"1", b"2", b"3", b"4", b"5", b"6"])
def test_links_devices_and_dirs_have_no_data_whatever_their_size(kind: bytes) -> None:
    # As tarfile and the official read them: the next header follows at once.
    data = _with_type(kind, 1000) + _tar([("f", b"abc")])
    entries = list(iter_entries(_reader(data), "t.tar"))
    assert [(e.name, e.header_block, e.size) for e in entries] == [("odd", 0, 0), ("f", 1, 3)]


@pytest.mark.parametrize("kind", [b"D", b"V", b"Z"])
def test_unknown_typeflags_data_is_skipped(kind: bytes) -> None:
    # The official fails on these; tarfile and GNU tar skip the data, and so do we.
    data = _with_type(kind, 1000) + b"J" * 1024 + _tar([("f", b"abc")])
    assert index_blocks(_reader(data), "t.tar") == ([3], 5)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        assert [(m.name, m.offset) for m in archive] == [("odd", 0), ("f", 3 * 512)]


def _header_at(data: bytes, block: int) -> bytearray:
    return bytearray(data[block * 512 : (block + 1) * 512])


def test_corrupt_header_raises_naming_archive_and_offset() -> None:
    data = bytearray((FIXTURES / "gnu.tar").read_bytes())
    data[3 * 512 + 5] ^= 0x01  # a name byte of the header at block 3
    with pytest.raises(OssFormatError, match=r"oss://b/gnu\.tar .* at byte 1536: header checksum"):
        index_blocks(_reader(bytes(data)), "oss://b/gnu.tar")
    with pytest.raises(OssFormatError, match="at byte 1536"):
        parse_member(data[3 * 512 :], 3 * 512, "oss://b/gnu.tar")


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (_tar([("f", b"abc")])[:300], "truncated header"),
        (_tar([("f", b"abc")])[:512] + b"ab", "needs 3 bytes of data"),
        (_tar([("f", b"x" * 1000)], tarfile.GNU_FORMAT)[:0], ""),
        (_tar([("L" * 200, b"abc")], tarfile.GNU_FORMAT)[:1024], "ends after an extended header"),
    ],
    ids=["short header", "short data", "empty file", "dangling long name"],
)
def test_truncated_archives(data: bytes, why: str) -> None:
    if not data:
        assert index_blocks(_reader(data), "t", 0) == ([], 0)  # as the official
        return
    with pytest.raises(OssFormatError, match=why):
        index_blocks(_reader(data), "t.tar", len(data))


def test_bad_fields_raise() -> None:
    good = _tar([("f", b"abc")])
    bad_size = _header_at(good, 0)
    bad_size[124:136] = b"0000000000z\0"
    with pytest.raises(OssFormatError, match=r"size field .* is not octal"):
        read_entry(_reader(_fix_checksum(bad_size)), 0, "t.tar")
    pax = _tar([("p" * 120, b"abc")], tarfile.PAX_FORMAT)
    broken = bytearray(pax)
    at = pax.index(b" path=")
    broken[at - 3 : at] = b"999"  # the record's length is wrong
    with pytest.raises(OssFormatError, match="pax record at"):
        read_entry(_reader(bytes(broken)), 0, "t.tar")


def _fix_checksum(header: bytearray) -> bytes:
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def test_signed_checksum_is_accepted() -> None:
    header = bytearray(_tar([("\u00e9t\u00e9", b"")])[:512])
    header[148:156] = b" " * 8
    signed = sum(b - 256 if b >= 0x80 else b for b in header)
    header[148:156] = b"%06o\0 " % signed
    entry = read_entry(_reader(bytes(header) + bytes(1024)), 0, "t.tar")
    assert entry is not None and entry.name == "\u00e9t\u00e9"


def test_parse_member_refuses_what_is_not_a_file() -> None:
    data = (FIXTURES / "gnu.tar").read_bytes()
    with pytest.raises(OssFormatError, match=r"type b'5', not a file"):
        parse_member(data, 0, "gnu.tar")  # block 0 is GNU tar's "./" entry
    with pytest.raises(OssFormatError, match="no member here"):
        parse_member(bytes(1024), 0, "gnu.tar")
    with pytest.raises(ValueError, match="multiple of 512"):
        parse_member(data, 100, "gnu.tar")


def test_gnu_sparse_members() -> None:
    info = tarfile.TarInfo("s")
    info.type = tarfile.GNUTYPE_SPARSE
    sparse = info.tobuf(format=tarfile.GNU_FORMAT) + bytes(1024)
    with pytest.raises(OssFormatError, match=r"GNU sparse members \('S'\) are not supported"):
        index_blocks(_reader(sparse), "s.tar")
    # pax-format sparse files look regular: indexed (as the official does), but not served.
    pax = io.BytesIO()
    info = tarfile.TarInfo("GNUSparseFile.0/s")
    info.size = 3
    info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0"}
    with tarfile.open(fileobj=pax, mode="w", format=tarfile.PAX_FORMAT) as archive:
        archive.addfile(info, io.BytesIO(b"abc"))
    assert index_blocks(_reader(pax.getvalue()), "s.tar")[0] == [0]
    with pytest.raises(OssFormatError, match="GNU sparse file"):
        parse_member(pax.getvalue(), 0, "s.tar")


def test_index_of_archive_with_trailing_non_files() -> None:
    # The end is where the last entry ends, file or not (the official's rule).
    data = _tar([("f", b"1")])[:1024]
    info = tarfile.TarInfo("d")
    info.type = tarfile.DIRTYPE
    data += info.tobuf(format=tarfile.USTAR_FORMAT) * 2 + bytes(1024)
    starts, end = index_blocks(_reader(data), "t.tar")
    assert (starts, end) == ([0], 4)
    assert decode_index(encode_index(starts, end), "t").byte_range(0) == (0, 4 * 512)
