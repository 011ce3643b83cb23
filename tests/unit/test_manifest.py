"""The built-in manifest parser and the manifest plumbing, without a server."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from osstorchconnector import OssConfigError, imagenet_manifest_parser
from osstorchconnector.manifest import join_uri, manifest_entries


# The seed document's imagenet_manifest_parser, verbatim but for its name, quote style and
# `Tuple` spelling (ruff's): the reference behaviour on well-formed input.
def seed_parser(reader: io.IOBase) -> Iterable[tuple[str, str]]:
    lines = reader.read().decode("utf-8").strip().split("\n")
    for i, line in enumerate(lines):
        try:
            items = line.strip().split("\t")
            if len(items) >= 2:
                key = items[0]
                label = items[1]
                yield (key, label)
            elif len(items) == 1:
                key = items[0]
                yield (key, "")
            else:
                raise ValueError("format error")
        except ValueError as e:
            logging.error(f"Error: {e} for line {i}: {line}")


# The seed's two formats, with its object names.
NAMES = (
    b"Img/BadImag/Bmp/Sample001/img001-00001.png\n"
    b"Img/BadImag/Bmp/Sample001/img001-00002.png\n"
    b"Img/BadImag/Bmp/Sample001/img001-00003.png\n"
)
LABELS = (
    b"Img/BadImag/Bmp/Sample001/img001-00001.png\tlabel1\n"
    b"Img/BadImag/Bmp/Sample001/img001-00002.png\tlabel2\n"
    b"Img/BadImag/Bmp/Sample001/img001-00003 with space.png\tlabel 3"
)


def parse(data: bytes) -> list[tuple[str, str]]:
    return list(imagenet_manifest_parser(io.BytesIO(data)))


@pytest.mark.parametrize(
    "data",
    [
        NAMES,
        LABELS,
        NAMES.rstrip(b"\n"),
        LABELS + b"\n",
        b"single",
        b"a\tb\tc\n",  # extra fields ignored by both
        "Img/中文/猫.jpg\t猫\n".encode(),
    ],
)
def test_matches_the_seed_parser_on_well_formed_input(data: bytes) -> None:
    ours = parse(data)
    assert ours, "a vacuous comparison"
    assert ours == list(seed_parser(io.BytesIO(data)))


def test_both_seed_formats() -> None:
    assert parse(NAMES) == [
        ("Img/BadImag/Bmp/Sample001/img001-00001.png", ""),
        ("Img/BadImag/Bmp/Sample001/img001-00002.png", ""),
        ("Img/BadImag/Bmp/Sample001/img001-00003.png", ""),
    ]
    assert parse(LABELS) == [
        ("Img/BadImag/Bmp/Sample001/img001-00001.png", "label1"),
        ("Img/BadImag/Bmp/Sample001/img001-00002.png", "label2"),
        ("Img/BadImag/Bmp/Sample001/img001-00003 with space.png", "label 3"),
    ]


def test_crlf_blank_lines_whitespace_and_extra_fields() -> None:
    data = b"\r\n a.png \t cat \r\n\r\n   \n\t\nb.png\tdog\textra\r\nc.png\r\nd.png\t\r\n\n"
    assert parse(data) == [("a.png", "cat"), ("b.png", "dog"), ("c.png", ""), ("d.png", "")]


def test_empty_manifest_yields_nothing() -> None:
    assert parse(b"") == []
    assert parse(b"\n\r\n  \n") == []


def test_only_newline_separates_lines() -> None:
    # splitlines() would cut these keys in two: \x0b, \x1c and U+2028 are legal in object keys.
    data = "a\x0bb.png\tx\nc\x1cd\u2028e.png\n".encode()
    assert parse(data) == [("a\x0bb.png", "x"), ("c\x1cd\u2028e.png", "")]


def test_byte_order_mark_is_not_part_of_the_first_key() -> None:
    assert parse(b"\xef\xbb\xbfa.png\t1\nb.png\t2\n") == [("a.png", "1"), ("b.png", "2")]


def test_text_mode_reader_is_accepted() -> None:
    assert list(imagenet_manifest_parser(io.StringIO("a.png\t1\nb.png\n"))) == [
        ("a.png", "1"),
        ("b.png", ""),
    ]


def test_bad_line_is_logged_with_its_number_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    data = b"a.png\tcat\n\n  \tlonely-label\nb.png\tdog\n"
    with caplog.at_level(logging.ERROR, logger="osstorchconnector"):
        got = list(imagenet_manifest_parser(io.BytesIO(data)))
    assert got == [("a.png", "cat"), ("b.png", "dog")]
    [record] = caplog.records
    assert record.levelno == logging.ERROR and record.name == "osstorchconnector"
    # Line 3 counting the blank line: numbers refer to the file, not to the non-blank lines.
    assert "line 3" in record.getMessage() and "lonely-label" in record.getMessage()


def test_not_utf8_names_the_file_and_offset(tmp_path: Path) -> None:
    path = tmp_path / "manifest.txt"
    path.write_bytes(b"ok.png\tx\n\xff\xfe.png\ty\n")
    with path.open("rb") as reader, pytest.raises(OssConfigError) as info:
        list(imagenet_manifest_parser(reader))
    assert str(path) in str(info.value) and "offset 9" in str(info.value)


def test_not_utf8_offset_counts_the_byte_order_mark() -> None:
    with pytest.raises(OssConfigError, match="offset 5"):
        parse(b"\xef\xbb\xbfab\xff")


def test_not_utf8_without_a_name_uses_the_reader_repr() -> None:
    with pytest.raises(OssConfigError, match=r"manifest <_io\.BytesIO object"):
        parse(b"\xc3(")


def test_parser_is_lazy() -> None:
    class Exploding(io.RawIOBase):
        def read(self, size: int = -1) -> bytes:
            raise AssertionError("read before iteration")

    entries = imagenet_manifest_parser(Exploding())  # nothing read yet
    with pytest.raises(AssertionError, match="read before iteration"):
        next(entries)


def test_base_uri_is_prepended_verbatim() -> None:
    assert join_uri("oss://b/base/", "k.png") == "oss://b/base/k.png"
    # No slash is invented: a base may end mid-name on purpose.
    assert join_uri("oss://b/base", "k.png") == "oss://b/basek.png"
    assert join_uri("oss://b/img-", "001.png") == "oss://b/img-001.png"
    assert join_uri("oss://b/base/", "/k.png") == "oss://b/base//k.png"
    # "" means the manifest holds full URIs.
    assert join_uri("", "oss://b/k.png") == "oss://b/k.png"
    # A full URI stays itself even with a base, so full-URI manifests work whatever the base.
    assert join_uri("oss://b/base/", "oss://c/k.png") == "oss://c/k.png"


def test_custom_parser_with_base_uri() -> None:
    def csv_parser(reader: Any) -> Iterable[tuple[str, str]]:
        for line in reader.read().decode().splitlines():
            key, label = line.split(",")
            yield key, label

    got = list(manifest_entries(io.BytesIO(b"a,1\nb,2"), "m.csv", csv_parser, "oss://b/p/"))
    assert got == [("oss://b/p/a", "1"), ("oss://b/p/b", "2")]


def test_parser_yielding_lists_works_as_in_the_official_connector() -> None:
    # The official connector unpacks `for key, label in parser(reader)`, so lists work there.
    def split_parser(reader: Any) -> Iterable[list[str]]:
        return (line.split(",") for line in reader.read().decode().splitlines())

    got = list(manifest_entries(io.BytesIO(b"a,1\nb,2"), "m.csv", split_parser, "oss://b/"))
    assert got == [("oss://b/a", "1"), ("oss://b/b", "2")]


def test_builtin_parser_through_manifest_entries() -> None:
    got = list(manifest_entries(io.BytesIO(LABELS), "m", imagenet_manifest_parser, "oss://b/p/"))
    assert got[0] == ("oss://b/p/Img/BadImag/Bmp/Sample001/img001-00001.png", "label1")
    assert len(got) == 3


def test_parser_errors_carry_a_note_naming_manifest_and_parser() -> None:
    def broken(reader: Any) -> Iterable[tuple[str, str]]:
        yield "oss://b/a", "1"
        raise KeyError("boom")

    entries = manifest_entries(io.BytesIO(b""), "/data/m.txt", broken, "")
    assert next(entries) == ("oss://b/a", "1")
    with pytest.raises(KeyError, match="boom") as info:
        next(entries)
    notes = getattr(info.value, "__notes__", [])
    assert len(notes) == 1 and "/data/m.txt" in notes[0] and "broken" in notes[0]


def test_parser_that_raises_before_yielding_gets_the_note() -> None:
    def not_a_generator(reader: Any) -> Iterable[tuple[str, str]]:
        raise RuntimeError("bad header")

    with pytest.raises(RuntimeError, match="bad header") as info:
        list(manifest_entries(io.BytesIO(b""), "oss://b/manifest", not_a_generator, ""))
    assert "oss://b/manifest" in " ".join(getattr(info.value, "__notes__", []))


@pytest.mark.parametrize(
    "entry",
    ["just-a-key", ("k",), ("k", "l", "extra"), ("k", 3), (b"k", "l"), None, "ab"],
)
def test_parser_yielding_non_pairs_is_an_error(entry: Any) -> None:
    def bad(reader: Any) -> Iterable[Any]:
        yield ("oss://b/ok", "fine")
        yield entry

    with pytest.raises(OssConfigError, match=r"m\.txt: entry 1 from parser .*bad") as info:
        list(manifest_entries(io.BytesIO(b""), "m.txt", bad, ""))
    assert repr(entry) in str(info.value)


def test_empty_key_from_a_parser_is_an_error() -> None:
    def empty(reader: Any) -> Iterable[tuple[str, str]]:
        yield "", "label"

    with pytest.raises(OssConfigError, match=r"m\.txt: entry 0 .*empty key"):
        list(manifest_entries(io.BytesIO(b""), "m.txt", empty, "oss://b/p/"))


def test_relative_keys_without_a_base_name_the_entry() -> None:
    entries = manifest_entries(
        io.BytesIO(b"oss://b/a\nImg/b.png\n"), "m.txt", imagenet_manifest_parser, ""
    )
    assert next(entries) == ("oss://b/a", "")
    with pytest.raises(OssConfigError, match=r"m\.txt: entry 1 \('Img/b\.png'\).*oss_base_uri"):
        next(entries)
