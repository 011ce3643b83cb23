"""OssClient: the official connector's object operations, checked with the official SDK."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import OssServer
from osstorchconnector import OssCheckpoint, OssClient, OssConfigError, OssNotFoundError

MIB = 1024 * 1024


@pytest.fixture
def client(oss_server: OssServer, tmp_path: Path) -> OssClient:
    return OssClient(
        oss_server.endpoint,
        cred_path=str(oss_server.write_cred_file(tmp_path / "cred.json")),
        region=oss_server.region,
    )


def test_put_then_get_head_and_list(client: OssClient, oss_server: OssServer, bucket: str) -> None:
    data = os.urandom(MIB + 3)
    with client.put_object(bucket, "dir/a.bin") as w:
        w.write(data)
    oss_server.put(bucket, "dir/b.bin", b"bee")
    oss_server.put(bucket, "other/c.bin", b"")
    assert oss_server.get(bucket, "dir/a.bin") == data

    obj = client.get_object(bucket, "dir/a.bin", label="cat")
    assert (obj.key, obj.size, obj.label) == ("dir/a.bin", len(data), "cat")
    assert obj.read() == data
    obj.seek(-3, 2)
    assert obj.read() == data[-3:]

    head = client.head_object(bucket, "dir/b.bin")
    assert (head.key, head.size) == ("dir/b.bin", 3)

    listed = [(o.key, o.size) for o in client.list_objects(bucket, "dir/")]
    assert listed == [("dir/a.bin", len(data)), ("dir/b.bin", 3)]
    everything = [o.key for o in client.list_objects(bucket)]
    assert everything == ["dir/a.bin", "dir/b.bin", "other/c.bin"]
    assert [o.read() for o in client.list_objects(bucket, "dir/b")] == [b"bee"]


def test_listing_pages_through_more_than_a_thousand_keys(
    client: OssClient, oss_server: OssServer, bucket: str
) -> None:
    for i in range(1005):
        oss_server.generate(bucket, f"many/{i:05d}", 1, seed=i)
    keys = [o.key for o in client.list_objects(bucket, "many/")]
    assert keys == [f"many/{i:05d}" for i in range(1005)]


def test_rename_copies_then_deletes(client: OssClient, oss_server: OssServer, bucket: str) -> None:
    oss_server.put(bucket, "from.bin", b"payload")
    client.rename_object(bucket, "from.bin", bucket, "to/renamed.bin")
    assert oss_server.get(bucket, "to/renamed.bin") == b"payload"
    assert not oss_server.exists(bucket, "from.bin")


def test_remove_and_missing_objects(client: OssClient, oss_server: OssServer, bucket: str) -> None:
    oss_server.put(bucket, "gone.bin", b"x")
    client.remove_object(bucket, "gone.bin")
    assert not oss_server.exists(bucket, "gone.bin")
    client.remove_object(bucket, "gone.bin")  # missing: not an error, as on OSS
    with pytest.raises(OssNotFoundError) as info:
        client.head_object(bucket, "gone.bin")
    assert (info.value.bucket, info.value.key, info.value.status) == (bucket, "gone.bin", 404)
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(OssNotFoundError):
        client.get_object(bucket, "gone.bin")
    with pytest.raises(OssNotFoundError):
        client.rename_object(bucket, "gone.bin", bucket, "x.bin")


def test_bad_names_and_endpoint_are_named(client: OssClient) -> None:
    with pytest.raises(OssConfigError, match="Bad_Bucket"):
        client.get_object("Bad_Bucket", "k")
    # OssClient("") is the local-path mode (test_local_mode.py); a checkpoint needs an endpoint
    with pytest.raises(OssConfigError, match="endpoint must be non-empty"):
        OssCheckpoint("")
