"""generate_tar_archive and the archive writer, against the archive the official connector wrote
for the same tree (`tests/fixtures/tar/official_tree.tar`), Python's `tarfile` and GNU tar."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from functools import partial
from pathlib import Path

import pytest
from fixtures.tar.fixture_specs import FILES, HARDLINKS, SOURCE_NAME, build_tree

from osstorchconnector._tar_index import decode_index, encode_index
from osstorchconnector._tar_writer import SourceFile, member_headers, write_archive
from osstorchconnector.exceptions import OssConfigError, OssFormatError
from osstorchconnector.tar_archive import generate_tar_archive, walk_local_files

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tar"


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fixture tree as ./tree, in a fresh current directory (member names are relative)."""
    monkeypatch.chdir(tmp_path)
    return build_tree(tmp_path)


def _expected_files() -> dict[str, bytes]:
    """Member name → content for the tree: its files and hard links; no symlinks or dirs."""
    files = {f"{SOURCE_NAME}/{rel}": data for rel, data in FILES.items()}
    files.update({f"{SOURCE_NAME}/{rel}": FILES[target] for rel, target in HARDLINKS.items()})
    return files


def _read_with_tarfile(path: Path) -> list[tuple[str, bytes]]:
    found = []
    with tarfile.open(path) as archive:
        for member in archive:
            assert member.isreg()
            assert (member.mode, member.uid, member.gid, member.mtime) == (0, 0, 0, 0)
            content = archive.extractfile(member)
            assert content is not None
            found.append((member.name, content.read()))
    return found


def test_writer_reproduces_the_officials_archive(tree: Path) -> None:
    """Given the official's member order (its readdir order), our bytes are its bytes."""
    with tarfile.open(FIXTURES / "official_tree.tar") as official:
        names = official.getnames()
    assert sorted(names) == sorted(_expected_files())  # symlinks and the empty dir left out
    sink = io.BytesIO()
    sources = [SourceFile(n, os.path.getsize(n), partial(Path(n).open, "rb")) for n in names]
    blocks = write_archive(sink, sources)
    assert sink.getvalue() == (FIXTURES / "official_tree.tar").read_bytes()
    index = (FIXTURES / "official_tree.tar.idx").read_bytes()
    assert encode_index(blocks[:-1], blocks[-1]) == index


def test_headers_of_an_8_gib_file_are_the_officials() -> None:
    headers = member_headers("big/huge.bin", 8 * 2**30 + 5)
    assert headers == (FIXTURES / "official_8gib_headers.bin").read_bytes()
    assert member_headers("big/huge.bin", 8**11 - 1)[124:136] == b"77777777777 "


def test_generated_archive_reads_back(tree: Path) -> None:
    assert generate_tar_archive("", "", "", "out.tar", "out.idx", SOURCE_NAME) == 0
    expected = _expected_files()
    # Depth first, each directory's entries in byte order of their names.
    order = sorted(expected, key=lambda name: [part.encode() for part in name.split("/")])
    assert _read_with_tarfile(Path("out.tar")) == [(name, expected[name]) for name in order]
    data = Path("out.tar").read_bytes()
    assert data.endswith(bytes(1024)) and len(data) % 512 == 0
    index = decode_index(Path("out.idx").read_bytes(), "out.idx")
    with tarfile.open("out.tar") as archive:
        assert list(index.blocks[:-1]) == [m.offset // 512 for m in archive]
        assert index.blocks[-1] * 512 == archive.offset == len(data) - 1024
    assert generate_tar_archive("", "", "", "out.tar", "again.idx", "", index_only=True) == 0
    assert Path("again.idx").read_bytes() == Path("out.idx").read_bytes()


@pytest.mark.skipif(shutil.which("tar") is None, reason="needs GNU tar")
def test_gnu_tar_reads_the_generated_archive(tree: Path) -> None:
    generate_tar_archive("", "", "", "out.tar", "out.idx", SOURCE_NAME)
    listing = subprocess.run(["tar", "-tf", "out.tar"], check=True, capture_output=True)
    assert sorted(listing.stdout.decode().splitlines()) == sorted(_expected_files())
    Path("x").mkdir()
    subprocess.run(["tar", "-xf", "../out.tar"], cwd="x", check=True, capture_output=True)
    for name, content in _expected_files().items():
        assert (Path("x") / name).read_bytes() == content


def test_names_longer_than_one_pax_block_stay_readable(tmp_path: Path) -> None:
    """The official writes only 512 bytes of pax data, so a ~500+ byte name breaks its archive;
    ours holds the whole record."""
    name = "/".join(["d" * 200] * 3) + "/file"
    sink = io.BytesIO()
    write_archive(sink, [SourceFile(name, 3, lambda: io.BytesIO(b"abc"))])
    with tarfile.open(fileobj=io.BytesIO(sink.getvalue())) as archive:
        member = archive.next()
        assert member is not None and (member.name, member.size) == (name, 3)


def test_long_name_and_8_gib_size_both_recorded() -> None:
    name, size = "n" * 150, 9 * 2**30
    with tarfile.open(fileobj=io.BytesIO(member_headers(name, size) + bytes(1024))) as archive:
        member = archive.next()
        assert member is not None and (member.name, member.size) == (name, size)


def test_empty_source_matches_the_officials(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    tar, index = tmp_path / "e.tar", tmp_path / "e.idx"
    assert generate_tar_archive("", "", "", str(tar), str(index), str(tmp_path / "src")) == 0
    assert tar.read_bytes() == (FIXTURES / "empty.tar").read_bytes() == bytes(1024)
    assert index.read_bytes() == (FIXTURES / "empty.tar.idx").read_bytes()


@pytest.mark.parametrize(
    ("source", "prefix"),
    [("tree", "tree/"), ("tree/", "tree/"), ("./tree", "./tree/"), ("tree//", "tree//")],
)
def test_member_names_join_the_source_path_as_given(tree: Path, source: str, prefix: str) -> None:
    # The official's names for these sources, seen in its archives.
    names = [f.name for f in walk_local_files(source)]
    assert names and all(name.startswith(prefix) for name in names)
    assert f"{prefix}a.txt" in names and f"{prefix}sub/deeper/n.txt" in names
    absolute = [f.name for f in walk_local_files(str(tree))]
    assert absolute[0].startswith(str(tree) + "/") and absolute[0].startswith("/")


def test_archive_written_inside_its_source_is_left_out(tree: Path) -> None:
    generate_tar_archive("", "", "", "tree/self.tar", "tree/self.idx", SOURCE_NAME)
    names = [name for name, _ in _read_with_tarfile(Path("tree/self.tar"))]
    assert sorted(names) == sorted(_expected_files())


def test_errors_leave_no_partial_files(tree: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing"):
        generate_tar_archive("", "", "", "out.tar", "out.idx", "missing")
    with pytest.raises(NotADirectoryError, match=r"a\.txt"):
        generate_tar_archive("", "", "", "out.tar", "out.idx", "tree/a.txt")
    corrupt = bytearray((FIXTURES / "gnu.tar").read_bytes())
    corrupt[512 + 3] ^= 1
    Path("corrupt.tar").write_bytes(corrupt)
    Path("out.idx").write_bytes(b"previous")
    with pytest.raises(
        OssFormatError, match=r"corrupt\.tar is not a valid tar archive at byte 512"
    ):
        generate_tar_archive("", "", "", "corrupt.tar", "out.idx", "", index_only=True)
    assert Path("out.idx").read_bytes() == b"previous"
    assert sorted(os.listdir()) == ["corrupt.tar", "out.idx", "tree"]


def test_oss_paths_need_an_endpoint() -> None:
    """Local paths need nothing; an oss:// path needs an endpoint (and credentials)."""
    with pytest.raises(OssConfigError, match="endpoint"):
        generate_tar_archive("", "", "", "oss://b/t.tar", "t.idx", "src")


def test_a_file_that_shrinks_while_archived_raises() -> None:
    with pytest.raises(OSError, match="shrank"):
        write_archive(io.BytesIO(), [SourceFile("f", 10, lambda: io.BytesIO(b"abc"))])
