"""Tar datasets: OssMapDataset.from_tar and OssIterableDataset.from_tar over archives made by
GNU-style, pax and ustar writers (Python's tarfile) and by the official connector (fixtures),
against the OSS test server. Expected members come from Python's tarfile, not from our code."""

from __future__ import annotations

import io
import random
import tarfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.utils.data

from conftest import OssServer
from osstorchconnector import (
    DataObject,
    OssIterableDataset,
    OssMapDataset,
    OssNotFoundError,
    generate_tar_archive,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tar"


@pytest.fixture
def opts(oss_server: OssServer, tmp_path: Path) -> dict[str, Any]:
    return {
        "endpoint": oss_server.endpoint,
        "region": oss_server.region,
        "cred_path": str(oss_server.write_cred_file(tmp_path / "cred.json")),
    }


def make_tar(fmt: int, members: int, seed: int = 0) -> tuple[bytes, list[tuple[str, bytes]]]:
    """A tar of `members` regular files (sizes 0 to ~60 KiB, some names over 100 bytes) with a
    directory and a symlink among them; returns it and its regular members in order."""
    rng = random.Random(seed)
    buf = io.BytesIO()
    regular: list[tuple[str, bytes]] = []
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        d = tarfile.TarInfo("./dir")
        d.type = tarfile.DIRTYPE
        tar.addfile(d)
        for i in range(members):
            long = "x" * 120 if i % 7 == 3 else ""
            name = f"./dir/{long}sample_{i:05d}.bin"
            size = 0 if i % 11 == 5 else rng.randrange(1, 60_000)
            data = rng.randbytes(size)
            info = tarfile.TarInfo(name)
            info.size = size
            tar.addfile(info, io.BytesIO(data))
            regular.append((name.removeprefix("./"), data))
            if i == 2:
                link = tarfile.TarInfo("./dir/link")
                link.type = tarfile.SYMTYPE
                link.linkname = "sample_00000.bin"
                tar.addfile(link)
    return buf.getvalue(), regular


def upload_tar(
    oss_server: OssServer, bucket: str, tmp_path: Path, tar_bytes: bytes, name: str = "a.tar"
) -> tuple[str, str]:
    """Uploads the tar and an index made by generate_tar_archive(index_only=True)."""
    local_tar = tmp_path / name
    local_tar.write_bytes(tar_bytes)
    local_index = tmp_path / (name + ".idx")
    assert generate_tar_archive("", "", "", str(local_tar), str(local_index), "", True) == 0
    oss_server.put(bucket, f"tars/{name}", tar_bytes)
    oss_server.put(bucket, f"tars/{name}.idx", local_index.read_bytes())
    return f"oss://{bucket}/tars/{name}", f"oss://{bucket}/tars/{name}.idx"


def index_of(tar_path: Path) -> Path:
    return tar_path.with_name(tar_path.name + ".idx")


def by_key(obj: DataObject) -> tuple[str, str, bytes]:
    return obj.key, obj.label, obj.read()


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT])
def test_map_from_tar_by_index(
    oss_server: OssServer, bucket: str, tmp_path: Path, opts: dict[str, Any], fmt: int
) -> None:
    if fmt == tarfile.USTAR_FORMAT:  # ustar cannot hold the long names: shorter ones
        tar_bytes, members = make_tar(fmt, 1, seed=1)
    else:
        tar_bytes, members = make_tar(fmt, 60)
    tar_uri, index_uri = upload_tar(oss_server, bucket, tmp_path, tar_bytes)
    ds = OssMapDataset.from_tar(tar_uri, index_uri, **opts)
    assert len(ds) == len(members)
    for i in (0, len(members) - 1, -1):
        obj = ds[i]
        name, data = members[i]
        assert (obj.key, obj.size, obj.read()) == (name, len(data), data)
        assert obj.label == str(i % len(members))
    order = list(range(len(members)))
    random.Random(3).shuffle(order)
    order += order[:3]  # repeated indices each get a full reader
    got = [(o.key, o.read()) for o in ds.__getitems__(order)]
    assert got == [members[i] for i in order]
    with pytest.raises(IndexError):
        ds[len(members)]


def test_map_batch_of_neighbours_is_one_request(
    oss_server: OssServer, bucket: str, tmp_path: Path, opts: dict[str, Any]
) -> None:
    tar_bytes, members = make_tar(tarfile.PAX_FORMAT, 40)
    ds = OssMapDataset.from_tar(*upload_tar(oss_server, bucket, tmp_path, tar_bytes), **opts)
    oss_server.reset_stats()
    got = [o.read() for o in ds.__getitems__(list(range(10, 30)))]
    assert got == [d for _, d in members[10:30]]
    time.sleep(0.2)  # the server counts a request after answering it
    assert oss_server.stats()["requests_by_method"].get("GET") == 1


def test_iterable_from_tar_exactly_once_in_runs(
    oss_server: OssServer, bucket: str, tmp_path: Path, opts: dict[str, Any]
) -> None:
    tar_bytes, members = make_tar(tarfile.GNU_FORMAT, 300)
    uris = upload_tar(oss_server, bucket, tmp_path, tar_bytes)
    ds = OssIterableDataset.from_tar(*uris, transform=by_key, **opts)
    oss_server.reset_stats()
    got = list(ds)
    assert [(k, d) for k, _, d in got] == members  # in archive order without workers
    assert [int(label) for _, label, _ in got] == list(range(len(members)))
    time.sleep(0.2)
    assert oss_server.stats()["requests_by_method"].get("GET", 0) <= 3  # ~9 MB in 8 MiB runs


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_iterable_from_tar_workers_and_shuffle(
    oss_server: OssServer, bucket: str, tmp_path: Path, opts: dict[str, Any], context: str
) -> None:
    tar_bytes, members = make_tar(tarfile.PAX_FORMAT, 250)
    uris = upload_tar(oss_server, bucket, tmp_path, tar_bytes)
    expected = Counter(k for k, _ in members)
    data = dict(members)

    def epoch(ds: Any) -> list[str]:
        loader = torch.utils.data.DataLoader(
            ds, batch_size=10, num_workers=2, collate_fn=list, multiprocessing_context=context
        )
        seen = [item for batch in loader for item in batch]
        assert all(d == data[k] for k, _, d in seen)
        keys = [k for k, _, _ in seen]
        assert Counter(keys) == expected  # every member exactly once over the workers
        return keys

    plain = OssIterableDataset.from_tar(*uris, transform=by_key, **opts)
    in_order = epoch(plain)
    shuffled = OssIterableDataset.from_tar(
        *uris, transform=by_key, shuffle=True, shuffle_chunk_size=20, **opts
    )
    torch.manual_seed(7)
    first, second = epoch(shuffled), epoch(shuffled)
    assert first != second and first != in_order  # a new order each epoch
    torch.manual_seed(7)
    assert epoch(shuffled) == first  # repeatable from torch's seed


def test_from_tar_errors(
    oss_server: OssServer, bucket: str, tmp_path: Path, opts: dict[str, Any]
) -> None:
    tar_bytes, _ = make_tar(tarfile.GNU_FORMAT, 5)
    tar_uri, index_uri = upload_tar(oss_server, bucket, tmp_path, tar_bytes)
    with pytest.raises(ValueError, match="same bucket"):
        OssMapDataset.from_tar(tar_uri, "oss://other-bucket/x.idx", **opts)
    with pytest.raises(OssNotFoundError):
        OssIterableDataset.from_tar(f"oss://{bucket}/tars/missing.tar", index_uri, **opts)
    oss_server.put(bucket, "tars/bad.idx", b"not an index" * 50)
    with pytest.raises(ValueError, match=r"bad\.idx"):
        OssMapDataset.from_tar(tar_uri, f"oss://{bucket}/tars/bad.idx", **opts)


def test_official_fixtures_read_by_ours(
    oss_server: OssServer, bucket: str, opts: dict[str, Any]
) -> None:
    """Archives and indexes written by the official connector read through both datasets:
    members as Python's tarfile sees them."""
    pairs = sorted(p for p in FIXTURES.glob("*.tar") if index_of(p).exists())
    assert pairs, f"no fixture tars with indexes under {FIXTURES}"
    for tar_path in pairs:
        index_path = index_of(tar_path)
        with tarfile.open(tar_path) as tar:
            expected = [
                (m.name.removeprefix("./"), tar.extractfile(m).read())  # type: ignore[union-attr]
                for m in tar.getmembers()
                if m.isreg()
            ]
        oss_server.put(bucket, tar_path.name, tar_path.read_bytes())
        oss_server.put(bucket, index_path.name, index_path.read_bytes())
        uris = (f"oss://{bucket}/{tar_path.name}", f"oss://{bucket}/{index_path.name}")
        mapped = OssMapDataset.from_tar(*uris, **opts)
        assert [(o.key, o.read()) for o in mapped] == expected, tar_path.name
        streamed = OssIterableDataset.from_tar(*uris, transform=by_key, **opts)
        assert [(k, d) for k, _, d in streamed] == expected, tar_path.name
        shuffled = OssIterableDataset.from_tar(
            *uris, transform=by_key, shuffle=True, shuffle_chunk_size=2, **opts
        )
        loader = torch.utils.data.DataLoader(shuffled, num_workers=2, collate_fn=list)
        seen = [(k, d) for batch in loader for k, _, d in batch]
        assert Counter(k for k, _ in seen) == Counter(k for k, _ in expected), tar_path.name
        assert sorted(seen) == sorted(expected)


def test_generate_tar_archive_from_and_to_oss(
    oss_server: OssServer, bucket: str, tmp_path: Path, opts: dict[str, Any]
) -> None:
    """Source, archive and index in OSS: the archive (read back with the official SDK) holds
    every object as /bucket/key, the index matches it, and from_tar reads it."""
    data = oss_server.put_random(bucket, {f"src/{i:03d}.bin": 1000 * i for i in range(12)})
    oss_server.put(bucket, "src/dir/", b"")  # a "directory" placeholder: not a member
    oss_server.put(bucket, "srcx/other.bin", b"a sibling prefix, left out")
    conn = [opts["endpoint"], opts["cred_path"], ""]
    tar_uri, index_uri = f"oss://{bucket}/out/all.tar", f"oss://{bucket}/out/all.tar.idx"
    assert (
        generate_tar_archive(
            *conn, tar_uri, index_uri, f"oss://{bucket}/src/", region=opts["region"]
        )
        == 0
    )
    local_tar = tmp_path / "all.tar"
    local_tar.write_bytes(oss_server.get(bucket, "out/all.tar"))
    with tarfile.open(local_tar) as tar:
        got = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    assert got == {f"/{bucket}/{k}": v for k, v in data.items()}
    local_index = tmp_path / "all.tar.idx"
    generate_tar_archive("", "", "", str(local_tar), str(local_index), "", True)
    assert oss_server.get(bucket, "out/all.tar.idx") == local_index.read_bytes()
    members = OssMapDataset.from_tar(tar_uri, index_uri, **opts)
    assert [(o.key, o.read()) for o in members] == sorted(got.items())


def test_index_only_of_an_archive_in_oss_equals_the_officials(
    oss_server: OssServer, bucket: str, opts: dict[str, Any]
) -> None:
    """index_only over archives in OSS (read in windows of headers) writes, into OSS, the
    bytes of the official connector's index of the same archive."""
    for name in ("gnu.tar", "pax.tar", "official_tree.tar"):
        oss_server.put(bucket, name, (FIXTURES / name).read_bytes())
        assert (
            generate_tar_archive(
                opts["endpoint"],
                opts["cred_path"],
                "",
                f"oss://{bucket}/{name}",
                f"oss://{bucket}/{name}.idx",
                "",
                True,
                region=opts["region"],
            )
            == 0
        )
        assert oss_server.get(bucket, f"{name}.idx") == index_of(FIXTURES / name).read_bytes()


def test_generate_tar_archive_failure_leaves_no_object(
    oss_server: OssServer, bucket: str, tmp_path: Path, opts: dict[str, Any]
) -> None:
    """A source that cannot be archived aborts the upload: no archive, no pending upload."""
    oss_server.put(bucket, "out/keep.tar", b"the previous archive")
    with pytest.raises(FileNotFoundError):
        generate_tar_archive(
            opts["endpoint"],
            opts["cred_path"],
            "",
            f"oss://{bucket}/out/keep.tar",
            f"oss://{bucket}/out/keep.tar.idx",
            str(tmp_path / "missing"),
            region=opts["region"],
        )
    assert oss_server.get(bucket, "out/keep.tar") == b"the previous archive"
    assert not oss_server.exists(bucket, "out/keep.tar.idx")
    assert oss_server.pending_uploads(bucket) == []


def test_tar_shuffle_with_a_seed_follows_set_epoch(
    oss_server: OssServer, bucket: str, tmp_path: Path, opts: dict[str, Any]
) -> None:
    tar_bytes, members = make_tar(tarfile.GNU_FORMAT, 120)
    uris = upload_tar(oss_server, bucket, tmp_path, tar_bytes)

    def epoch(ds: Any) -> list[str]:
        loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
        return [k for k, _, _ in loader]

    def make() -> OssIterableDataset:
        return OssIterableDataset.from_tar(
            *uris, transform=by_key, shuffle=True, shuffle_chunk_size=10, seed=5, **opts
        )

    first = epoch(make())
    assert sorted(first) == sorted(k for k, _ in members) and first != [k for k, _ in members]
    assert epoch(make()) == first  # a function of the seed: torch's generator plays no part
    ds = make()
    ds.set_epoch(1)
    assert epoch(ds) != first
