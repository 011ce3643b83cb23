"""s3:// URIs speak S3 (AWS SigV4) to an S3-compatible server: s3s-fs, which verifies every
request's signature. Fixtures are written with the minio client and what we write is read back
with it, never with ours.

s3s-fs echoes `encoding-type=url` without encoding keys (see tests/s3_server.py), so a key
holding `+` would come back from its listings as a space to any client that decodes them as AWS
encodes them; keys here avoid `+`. Such keys are tested against moto, which encodes listings as
AWS does (test_s3_key_encoding.py)."""

from __future__ import annotations

import io
import json
import os
import socket
import tarfile
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from s3_server import S3Server

from osstorchconnector import (
    DataObject,
    OssCheckpoint,
    OssClient,
    OssDCPFileSystem,
    OssIterableDataset,
    OssMapDataset,
    generate_tar_archive,
    imagenet_manifest_parser,
)
from osstorchconnector.exceptions import OssConfigError, OssNotFoundError, OssPermissionError

DataLoader = torch.utils.data.DataLoader


@pytest.fixture
def objects(s3_server: S3Server, s3_bucket: str) -> dict[str, bytes]:
    sizes = [0, 1, 100, 5000, 70_000] * 6 + [3_000_000]
    data = {f"d/{i:03d} x.bin": os.urandom(n) for i, n in enumerate(sizes)}
    client = s3_server.client()
    for key, body in data.items():
        client.put_object(s3_bucket, key, io.BytesIO(body), len(body))
    return data


def key_and_crc(obj: DataObject) -> tuple[str, int]:
    return obj.key, zlib.crc32(obj.read())


def crcs(data: dict[str, bytes]) -> Counter[tuple[str, int]]:
    return Counter((k, zlib.crc32(v)) for k, v in data.items())


@pytest.mark.parametrize("workers", [0, 2])
def test_prefix_through_a_dataloader_reads_each_object_once(
    s3_server: S3Server, s3_bucket: str, objects: dict[str, bytes], s3_cred: str, workers: int
) -> None:
    ds = OssIterableDataset.from_prefix(
        f"s3://{s3_bucket}/d/", s3_server.endpoint, transform=key_and_crc, cred_path=s3_cred
    )
    loader = DataLoader(ds, batch_size=4, num_workers=workers, collate_fn=list)
    for _ in range(2):
        assert Counter(x for batch in loader for x in batch) == crcs(objects)


def test_objects_and_manifest_and_map_datasets(
    s3_server: S3Server, s3_bucket: str, objects: dict[str, bytes], s3_cred: str, tmp_path: Path
) -> None:
    keys = sorted(objects)
    uris = [f"s3://{s3_bucket}/{k}" for k in keys]
    listed = OssIterableDataset.from_objects(
        uris, s3_server.endpoint, transform=key_and_crc, cred_path=s3_cred
    )
    assert list(listed) == [(k, zlib.crc32(objects[k])) for k in keys]  # in the given order

    manifest = tmp_path / "manifest.txt"
    manifest.write_text("".join(f"{k}\tlabel{i}\n" for i, k in enumerate(keys)))
    by_manifest = OssIterableDataset.from_manifest_file(
        str(manifest),
        imagenet_manifest_parser,
        f"s3://{s3_bucket}/",
        s3_server.endpoint,
        cred_path=s3_cred,
    )
    assert [(o.key, o.label, o.read()) for o in by_manifest] == [
        (k, f"label{i}", objects[k]) for i, k in enumerate(keys)
    ]

    prefix = f"s3://{s3_bucket}/d/"
    mapped = OssMapDataset.from_prefix(prefix, s3_server.endpoint, cred_path=s3_cred)
    assert len(mapped) == len(objects)
    assert mapped[-1].read() == objects[keys[-1]]
    batch = mapped.__getitems__([3, 0, 30])
    assert [o.read() for o in batch] == [objects[keys[i]] for i in (3, 0, 30)]


def test_tar_archive_written_and_read_over_s3(
    s3_server: S3Server, s3_bucket: str, objects: dict[str, bytes], s3_cred: str, tmp_path: Path
) -> None:
    tar_uri, index_uri = f"s3://{s3_bucket}/t/a.tar", f"s3://{s3_bucket}/t/a.idx"
    source = f"s3://{s3_bucket}/d/"
    generate_tar_archive(s3_server.endpoint, s3_cred, "", tar_uri, index_uri, source)
    body = s3_server.client().get_object(s3_bucket, "t/a.tar").read()  # read back by minio
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
    assert members == {f"/{s3_bucket}/{k}": v for k, v in objects.items()}

    ds = OssIterableDataset.from_tar(tar_uri, index_uri, s3_server.endpoint, cred_path=s3_cred)
    assert {o.key: o.read() for o in ds} == members
    mapped = OssMapDataset.from_tar(tar_uri, index_uri, s3_server.endpoint, cred_path=s3_cred)
    assert len(mapped) == len(members)


def test_checkpoint_save_and_load(s3_server: S3Server, s3_bucket: str, s3_cred: str) -> None:
    state = {"w": torch.arange(3_000_000, dtype=torch.float32), "step": torch.tensor(7)}
    checkpoint = OssCheckpoint(s3_server.endpoint, cred_path=s3_cred, protocol="s3")
    with checkpoint.writer(f"s3://{s3_bucket}/ckpt/a.pt") as writer:
        torch.save(state, writer)
    written = s3_server.client().get_object(s3_bucket, "ckpt/a.pt").read()
    back = torch.load(io.BytesIO(written), weights_only=True)
    assert torch.equal(back["w"], state["w"]) and int(back["step"]) == 7

    buf = io.BytesIO()
    torch.save({"v": torch.ones(10)}, buf)
    s3_server.client().put_object(s3_bucket, "ckpt/b.pt", io.BytesIO(buf.getvalue()), buf.tell())
    with checkpoint.reader(f"s3://{s3_bucket}/ckpt/b.pt") as reader:
        assert torch.equal(torch.load(reader, weights_only=True)["v"], torch.ones(10))


def test_oss_client_object_operations(s3_server: S3Server, s3_bucket: str, s3_cred: str) -> None:
    client = OssClient(s3_server.endpoint, cred_path=s3_cred, protocol="s3")
    with client.put_object(s3_bucket, "o/one") as writer:
        writer.write(b"first")
    assert s3_server.client().get_object(s3_bucket, "o/one").read() == b"first"
    assert client.get_object(s3_bucket, "o/one").read() == b"first"
    client.rename_object(s3_bucket, "o/one", s3_bucket, "o/two")
    assert s3_server.list_keys(s3_bucket, "o/") == ["o/two"]
    assert [o.key for o in client.list_objects(s3_bucket, "o/")] == ["o/two"]
    client.remove_object(s3_bucket, "o/two")
    assert s3_server.list_keys(s3_bucket, "o/") == []


def test_errors_name_the_s3_uri(
    s3_server: S3Server, s3_bucket: str, objects: dict[str, bytes], s3_cred: str, tmp_path: Path
) -> None:
    missing = OssIterableDataset.from_objects(
        [f"s3://{s3_bucket}/no/such"], s3_server.endpoint, cred_path=s3_cred
    )
    with pytest.raises(OssNotFoundError, match=f"s3://{s3_bucket}/no/such"):
        list(missing)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"AccessKeyId": s3_server.access_key, "AccessKeySecret": "x"}))
    refused = OssIterableDataset.from_prefix(
        f"s3://{s3_bucket}/", s3_server.endpoint, cred_path=str(wrong)
    )
    with pytest.raises(OssPermissionError, match="SignatureDoesNotMatch"):
        list(refused)
    with pytest.raises(OssConfigError, match="one protocol"):
        OssIterableDataset.from_objects(
            [f"s3://{s3_bucket}/a", f"oss://{s3_bucket}/b"], s3_server.endpoint, cred_path=s3_cred
        )

    class Reiterable:  # neither a list nor an iterator: checked as it streams
        def __iter__(self) -> Any:
            return iter([f"s3://{s3_bucket}/d/000 x.bin", f"oss://{s3_bucket}/b"])

    mixed = OssIterableDataset.from_objects(Reiterable(), s3_server.endpoint, cred_path=s3_cred)
    with pytest.raises(OssConfigError, match="made for s3://"):
        list(mixed)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


FULL = torch.arange(32 * 8, dtype=torch.float32).reshape(32, 8)


def dcp_rank(rank: int, port: int, conn: dict[str, Any], uri: str) -> None:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        mesh = init_device_mesh("cpu", (2,))
        fs = OssDCPFileSystem(**conn, protocol="s3")
        dcp.save({"w": distribute_tensor(FULL, mesh, [Shard(0)])}, storage_writer=fs.writer(uri))
        back = {"w": distribute_tensor(torch.zeros_like(FULL), mesh, [Shard(0)])}
        dcp.load(back, storage_reader=fs.reader(uri))
        assert torch.equal(back["w"].full_tensor(), FULL)
        # Every rank past its last collective before any tears its group down: a rank that
        # destroys its gloo group while a peer still talks to it can abort that peer.
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_dcp_on_two_ranks(s3_server: S3Server, s3_bucket: str, s3_cred: str) -> None:
    conn = {"endpoint": s3_server.endpoint, "cred_path": s3_cred}
    uri = f"s3://{s3_bucket}/dcp/step-1"
    mp.spawn(dcp_rank, args=(free_port(), conn, uri), nprocs=2, join=True)
    keys = s3_server.list_keys(s3_bucket, "dcp/step-1/")
    assert "dcp/step-1/.metadata" in keys
    assert sorted(k for k in keys if k.endswith(".distcp")) == [
        "dcp/step-1/__0_0.distcp",
        "dcp/step-1/__1_0.distcp",
    ]


def test_aws_credentials_from_environment_then_shared_file(
    s3_server: S3Server,
    s3_bucket: str,
    objects: dict[str, bytes],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    # An empty shared file, so the machine's own ~/.aws cannot answer for the test.
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    uri = f"s3://{s3_bucket}/d/"
    assert len(list(OssIterableDataset.from_prefix(uri, s3_server.endpoint))) == len(objects)

    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    shared = tmp_path / "credentials"
    shared.write_text(
        "[default]\naws_access_key_id = nobody\naws_secret_access_key = nothing\n\n"
        f"[train]  # the job's profile\naws_access_key_id = {s3_server.access_key}\n"
        f"aws_secret_access_key = {s3_server.secret_key}\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(shared))
    monkeypatch.setenv("AWS_PROFILE", "train")
    assert len(OssMapDataset.from_prefix(uri, s3_server.endpoint)) == len(objects)
    monkeypatch.setenv("AWS_PROFILE", "missing")
    with pytest.raises(OssConfigError, match="missing"):
        OssMapDataset.from_prefix(uri, s3_server.endpoint)


def test_the_endpoint_from_the_aws_variables_when_none_is_given(
    s3_server: S3Server,
    s3_bucket: str,
    objects: dict[str, bytes],
    s3_cred: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint)  # the S3-specific one wins
    uri = f"s3://{s3_bucket}/d/"
    ds = OssIterableDataset.from_prefix(uri, "", transform=key_and_crc, cred_path=s3_cred)
    assert Counter(ds) == crcs(objects)
    client = OssClient("", cred_path=s3_cred, protocol="s3")
    assert [o.key for o in client.list_objects(s3_bucket, "d/")] == sorted(objects)
