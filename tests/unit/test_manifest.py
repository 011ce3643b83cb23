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


def seed_parser(reader: Any) -> Iterable[tuple[str, str]]:
    """The seed document's imagenet_manifest_parser, verbatim (the reference behaviour)."""
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


NAMES = b"Img/a/img001-00001.png\nImg/a/img001-00002.png\nImg/a/img001-00003.png\n"
LABELS = b"Img/a/1.png\tlabel1\nImg/a/2.png\tlabel2\nImg/a/3 with space.png\tlabel 3"


@pytest.mark.parametrize("data", [NAMES, LABELS, NAMES.rstrip(b"\n"), b"single"])
def test_matches_the_seed_parser_on_well_formed_input(data: bytes) -> None:
    ours = list(imagenet_manifest_parser(io.BytesIO(data)))
    assert ours == list(seed_parser(io.BytesIO(data)))
    assert ours


def test_both_formats() -> None:
    assert list(imagenet_manifest_parser(io.BytesIO(NAMES))) == [
        ("Img/a/img001-00001.png", ""),
        ("Img/a/img001-00002.png", ""),
        ("Img/a/img001-00003.png", ""),
    ]
    assert list(imagenet_manifest_parser(io.BytesIO(LABELS)))[2] == (
        "Img/a/3 with space.png",
        "label 3",
    )


def test_crlf_blank_lines_and_extra_fields() -> None:
    data = b"a.png\tcat\r\n\r\n   \nb.png\tdog\textra\r\nc.png\r\n"
    assert list(imagenet_manifest_parser(io.BytesIO(data))) == [
        ("a.png", "cat"),
        ("b.png", "dog"),
        ("c.png", ""),
    ]


def test_bad_line_is_logged_with_its_number_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    data = b"a.png\tcat\n\tlonely-label\nb.png\tdog\n"
    with caplog.at_level(logging.ERROR, logger="osstorchconnector"):
        got = list(imagenet_manifest_parser(io.BytesIO(data)))
    assert got == [("a.png", "cat"), ("b.png", "dog")]
    messages = [r.getMessage() for r in caplog.records]
    assert any("line 2" in m and "lonely-label" in m for m in messages), messages


def test_not_utf8_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "manifest.txt"
    path.write_bytes(b"ok.png\tx\n\xff\xfe.png\ty\n")
    with path.open("rb") as reader, pytest.raises(OssConfigError) as info:
        list(imagenet_manifest_parser(reader))
    assert str(path) in str(info.value) and "offset 9" in str(info.value)


def test_base_uri_is_prepended_verbatim() -> None:
    assert join_uri("oss://b/base/", "k.png") == "oss://b/base/k.png"
    assert join_uri("oss://b/base", "k.png") == "oss://b/basek.png"
    assert join_uri("", "oss://b/k.png") == "oss://b/k.png"
    assert join_uri("oss://b/base/", "oss://c/k.png") == "oss://c/k.png"


def test_custom_parser_and_base_uri() -> None:
    def csv_parser(reader: Any) -> Iterable[tuple[str, str]]:
        for line in reader.read().decode().splitlines():
            key, label = line.split(",")
            yield key, label

    got = list(manifest_entries(io.BytesIO(b"a,1\nb,2"), "m.csv", csv_parser, "oss://b/p/"))
    assert got == [("oss://b/p/a", "1"), ("oss://b/p/b", "2")]


def test_parser_errors_carry_a_note_naming_manifest_and_parser() -> None:
    def broken(reader: Any) -> Iterable[tuple[str, str]]:
        yield "a", "1"
        raise KeyError("boom")

    entries = manifest_entries(io.BytesIO(b""), "/data/m.txt", broken, "")
    assert next(entries) == ("a", "1")
    with pytest.raises(KeyError) as info:
        next(entries)
    notes = " ".join(getattr(info.value, "__notes__", []))
    assert "/data/m.txt" in notes and "broken" in notes


def test_parser_yielding_non_pairs_is_an_error() -> None:
    def bad(reader: Any) -> Iterable[Any]:
        yield "just-a-key"

    with pytest.raises(OssConfigError, match=r"m\.txt.*entry 0.*'just-a-key'"):
        list(manifest_entries(io.BytesIO(b""), "m.txt", bad, ""))
