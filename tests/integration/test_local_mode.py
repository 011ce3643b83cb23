"""Local-path mode: with an empty endpoint, ``oss://bucket/key`` is the file ``/bucket/key``
and a prefix is listed by walking ``/bucket``, through the same datasets and pipeline. No
server and no credentials. The files live under pytest's temporary directory, so the "bucket"
is its first path component (``/tmp/...`` is ``oss://tmp/...``)."""

from __future__ import annotations

import io
import os
import random
import tarfile
from collections import Counter
from pathlib import Path

import pytest
import torch.utils.data

from osstorchconnector import (
    OssConfigError,
    OssIterableDataset,
    OssMapDataset,
    OssNotFoundError,
    generate_tar_archive,
    imagenet_manifest_parser,
)


def uri_of(path: Path) -> str:
    return "oss:/" + str(path)


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """Files under tmp_path/data (one empty, one of 20 MiB: several parts), keyed by URI."""
    for name in ("OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", "OSS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.alibabacloud/credentials
    rng = random.Random(5)
    sizes = {f"data/{i:02d}.bin": rng.randrange(1, 30_000) for i in range(20)}
    sizes["data/sub/empty.bin"] = 0
    sizes["data/sub/large.bin"] = 20 << 20
    files = {}
    for name, size in sizes.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        body = os.urandom(size)
        path.write_bytes(body)
        files[uri_of(path)] = body
    (tmp_path / "dataX").mkdir()
    (tmp_path / "dataX" / "sibling.bin").write_bytes(b"outside the prefix data/")
    return files


def test_iterable_prefix_reads_the_files_in_key_order(tmp_path: Path, tree: dict[str, bytes]):
    ds = OssIterableDataset.from_prefix(uri_of(tmp_path / "data") + "/", endpoint="")
    got = [(f"oss://{o.bucket}/{o.key}", o.read()) for o in ds]
    assert got == sorted(tree.items(), key=lambda kv: kv[0].encode())


def test_dataloader_workers_read_each_file_once(tmp_path: Path, tree: dict[str, bytes]) -> None:
    ds = OssIterableDataset.from_prefix(
        uri_of(tmp_path / "data") + "/", endpoint="", transform=lambda o: (o.key, len(o.read()))
    )
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, collate_fn=list)
    seen = [item for batch in loader for item in batch]
    expected = Counter(uri.split("/", 3)[3] for uri in tree)
    assert Counter(k for k, _ in seen) == expected
    assert {k: n for k, n in seen} == {u.split("/", 3)[3]: len(b) for u, b in tree.items()}


def test_map_dataset_objects_and_missing_file(tmp_path: Path, tree: dict[str, bytes]) -> None:
    uris = sorted(tree)
    ds = OssMapDataset.from_objects([*uris, uri_of(tmp_path / "data" / "gone.bin")], endpoint="")
    assert [o.read() for o in ds.__getitems__([3, 0, len(uris) - 1])] == [
        tree[uris[3]],
        tree[uris[0]],
        tree[uris[-1]],
    ]
    with pytest.raises(OssNotFoundError, match=r"gone\.bin"):
        ds[len(uris)]
    listed = OssMapDataset.from_prefix(uri_of(tmp_path / "data") + "/", endpoint="")
    assert len(listed) == len(tree)


def test_manifest_and_tar_datasets(tmp_path: Path, tree: dict[str, bytes]) -> None:
    base = uri_of(tmp_path / "data") + "/"
    manifest = tmp_path / "manifest.tsv"
    manifest.write_text("03.bin\tcat\n01.bin\tdog\n")
    ds = OssIterableDataset.from_manifest_file(
        str(manifest), imagenet_manifest_parser, base, endpoint=""
    )
    assert [(o.label, o.read()) for o in ds] == [
        ("cat", tree[base + "03.bin"]),
        ("dog", tree[base + "01.bin"]),
    ]
    members = [(f"m/{i}.bin", os.urandom(i * 1000)) for i in range(30)]
    with tarfile.open(tmp_path / "a.tar", "w", format=tarfile.PAX_FORMAT) as tar:
        for name, body in members:
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    tar_path, index_path = tmp_path / "a.tar", tmp_path / "a.tar.idx"
    generate_tar_archive("", "", "", str(tar_path), str(index_path), "", True)
    for cls in (OssIterableDataset, OssMapDataset):
        tar_ds = cls.from_tar(uri_of(tar_path), uri_of(index_path), endpoint="")
        assert [(o.key, o.read()) for o in tar_ds] == members


def test_writing_needs_an_endpoint(tmp_path: Path, tree: dict[str, bytes]) -> None:
    from osstorchconnector import OssClient

    client = OssClient("")
    with (
        pytest.raises(OssConfigError, match="local files"),
        client.put_object("tmp", "x/y.bin") as writer,
    ):
        writer.write(b"data")
    assert not Path("/tmp/x/y.bin").exists()


def test_a_file_rewritten_while_read_is_a_changed_object(tmp_path: Path) -> None:
    from osstorchconnector import OssClient, OssObjectChangedError

    path = tmp_path / "data" / "f.bin"
    path.parent.mkdir()
    path.write_bytes(b"a" * (20 << 20))  # larger than what a read fetches ahead
    reader = OssClient("").get_object("tmp", str(path.relative_to("/tmp")))
    assert reader.read(10) == b"a" * 10
    os.utime(path, ns=(1, 1))  # another version: modification time changed
    with pytest.raises(OssObjectChangedError):
        reader.seek(19 << 20)
        reader.read(10)
