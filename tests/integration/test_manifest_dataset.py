"""from_manifest_file: the seed's two manifest formats, from a local file and from OSS, full-URI
manifests, labels, worker sharding and the error cases."""

from __future__ import annotations

import io
import logging
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from conftest import OssServer
from osstorchconnector import (
    OssIterableDataset,
    OssNotFoundError,
    imagenet_manifest_parser,
)

BASE = "EnglistImg/"
KEYS = [f"Img/BadImag/Bmp/Sample001/img001-0000{i}.png" for i in range(1, 6)]


@pytest.fixture
def seeded(oss_server: OssServer, bucket: str) -> dict[str, bytes]:
    data = {k: os.urandom(100 * (i + 1)) for i, k in enumerate(KEYS)}
    for k, v in data.items():
        oss_server.put(bucket, BASE + k, v)
    return data


@pytest.fixture
def opts(oss_server: OssServer, tmp_path: Path) -> dict[str, Any]:
    return {
        "endpoint": oss_server.endpoint,
        "region": oss_server.region,
        "cred_path": str(oss_server.write_cred_file(tmp_path / "cred.json")),
    }


def names_manifest() -> bytes:
    return "".join(f"{k}\n" for k in KEYS).encode()


def labels_manifest() -> bytes:
    return "".join(f"{k}\tlabel{i}\n" for i, k in enumerate(KEYS)).encode()


def read_all(ds: OssIterableDataset) -> list[tuple[str, str, bytes]]:
    return [(o.key, o.label, o.read()) for o in ds]


@pytest.mark.parametrize("fmt", ["names", "labels"])
@pytest.mark.parametrize("where", ["local", "oss"])
def test_seed_manifest_formats(
    oss_server: OssServer,
    bucket: str,
    seeded: dict[str, bytes],
    opts: dict[str, Any],
    tmp_path: Path,
    fmt: str,
    where: str,
) -> None:
    body = names_manifest() if fmt == "names" else labels_manifest()
    if where == "local":
        path = tmp_path / "manifest_file"
        path.write_bytes(body)
        manifest = str(path)
    else:
        oss_server.put(bucket, BASE + "manifest_file", body)
        manifest = f"oss://{bucket}/{BASE}manifest_file"
    ds = OssIterableDataset.from_manifest_file(
        manifest_file_path=manifest,
        manifest_parser=imagenet_manifest_parser,
        oss_base_uri=f"oss://{bucket}/{BASE}",
        **opts,
    )
    labels = [("" if fmt == "names" else f"label{i}") for i in range(len(KEYS))]
    want = [(BASE + k, lab, seeded[k]) for k, lab in zip(KEYS, labels, strict=True)]
    assert read_all(ds) == want
    assert read_all(ds) == want, "a second epoch"


def test_full_uri_manifest_with_empty_base(
    bucket: str, seeded: dict[str, bytes], opts: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "full.txt"
    path.write_text("".join(f"oss://{bucket}/{BASE}{k}\tc{i}\n" for i, k in enumerate(KEYS)))
    ds = OssIterableDataset.from_manifest_file(str(path), imagenet_manifest_parser, "", **opts)
    assert [(o.key, o.label) for o in ds] == [(BASE + k, f"c{i}") for i, k in enumerate(KEYS)]


def test_bad_line_is_logged_and_skipped(
    bucket: str,
    seeded: dict[str, bytes],
    opts: dict[str, Any],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / "m.txt"
    path.write_text(f"{KEYS[0]}\tgood\n\tno-key\n{KEYS[1]}\tgood\n")
    ds = OssIterableDataset.from_manifest_file(
        str(path), imagenet_manifest_parser, f"oss://{bucket}/{BASE}", **opts
    )
    with caplog.at_level(logging.ERROR, logger="osstorchconnector"):
        assert [o.key for o in ds] == [BASE + KEYS[0], BASE + KEYS[1]]
    assert any("line 2" in r.getMessage() for r in caplog.records)


def test_custom_parser(
    bucket: str, seeded: dict[str, bytes], opts: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "m.csv"
    path.write_text("".join(f"{k},{i}\n" for i, k in enumerate(KEYS)))

    def csv_parser(reader: io.IOBase) -> Iterable[tuple[str, str]]:
        for line in reader.read().decode().splitlines():
            key, label = line.split(",")
            yield key, label

    ds = OssIterableDataset.from_manifest_file(
        str(path), csv_parser, f"oss://{bucket}/{BASE}", **opts
    )
    assert [o.label for o in ds] == [str(i) for i in range(len(KEYS))]


def test_parser_that_raises(opts: dict[str, Any], bucket: str, tmp_path: Path) -> None:
    path = tmp_path / "m.txt"
    path.write_text("x\n")

    def exploding(reader: io.IOBase) -> Iterable[tuple[str, str]]:
        raise RuntimeError("parser bug")
        yield ("", "")  # pragma: no cover - makes this a generator

    ds = OssIterableDataset.from_manifest_file(str(path), exploding, f"oss://{bucket}/", **opts)
    with pytest.raises(RuntimeError, match="parser bug") as info:
        list(ds)
    assert str(path) in " ".join(getattr(info.value, "__notes__", []))


def test_missing_manifests(opts: dict[str, Any], bucket: str, tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    with pytest.raises(OssNotFoundError, match=str(missing)):
        OssIterableDataset.from_manifest_file(str(missing), imagenet_manifest_parser, "", **opts)
    with pytest.raises(OssNotFoundError, match="NoSuchKey") as info:
        OssIterableDataset.from_manifest_file(
            f"oss://{bucket}/no/manifest", imagenet_manifest_parser, "", **opts
        )
    assert info.value.key == "no/manifest"


def test_missing_object_named_in_a_manifest(
    bucket: str, seeded: dict[str, bytes], opts: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "m.txt"
    path.write_text(f"{KEYS[0]}\nImg/not-there.png\n")
    ds = OssIterableDataset.from_manifest_file(
        str(path), imagenet_manifest_parser, f"oss://{bucket}/{BASE}", **opts
    )
    it = iter(ds)
    assert next(it).key == BASE + KEYS[0]
    with pytest.raises(OssNotFoundError, match=r"Img/not-there\.png"):
        next(it)


@pytest.mark.parametrize("num_workers", [2, 3])
def test_workers_share_a_manifest(
    bucket: str, seeded: dict[str, bytes], opts: dict[str, Any], tmp_path: Path, num_workers: int
) -> None:
    torch = pytest.importorskip("torch")
    path = tmp_path / "m.txt"
    path.write_bytes(labels_manifest())

    def key_label(obj: Any) -> tuple[str, str]:
        return obj.key, obj.label

    ds = OssIterableDataset.from_manifest_file(
        str(path), imagenet_manifest_parser, f"oss://{bucket}/{BASE}", transform=key_label, **opts
    )
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=num_workers)
    # Collation turns each (key, label) tuple into a list.
    assert Counter(tuple(item) for item in loader) == Counter(
        (BASE + k, f"label{i}") for i, k in enumerate(KEYS)
    )
