"""OssIterableDataset against the OSS test server: keys, sizes and bytes, ordering, pagination,
awkward keys, credentials sources and error classes. Fixtures are uploaded with the official SDK."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from conftest import OssServer, start_oss_server, stop_oss_server
from osstorchconnector import (
    DataObject,
    OssConfigError,
    OssIterableDataset,
    OssNotFoundError,
    OssPermissionError,
)

AWKWARD_KEYS = [
    "odd/a b.txt",
    "odd/c+d.txt",
    "odd/100%.txt",
    "odd/50%25.txt",
    "odd/x=y&z.txt",
    "odd/tilde~semi;colon.txt",
    "odd/q?.txt",
    "odd/hash#.txt",
    "odd/日本語/ファイル.png",
    "odd/emoji😀.bin",
    "odd/dir/",
    "odd/" + "/".join(f"d{i}" for i in range(30)) + "/leaf.bin",
    "odd/zero",
]


@pytest.fixture
def cred_path(oss_server: OssServer, tmp_path: Path) -> str:
    return str(oss_server.write_cred_file(tmp_path / "cred.json"))


def from_prefix(server: OssServer, uri: str, cred: str, **kw: Any) -> OssIterableDataset:
    kw.setdefault("region", server.region)
    return OssIterableDataset.from_prefix(uri, endpoint=server.endpoint, cred_path=cred, **kw)


def from_objects(server: OssServer, uris: Any, cred: str, **kw: Any) -> OssIterableDataset:
    kw.setdefault("region", server.region)
    return OssIterableDataset.from_objects(uris, endpoint=server.endpoint, cred_path=cred, **kw)


def upload(server: OssServer, bucket: str, objects: dict[str, bytes]) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda kv: server.put(bucket, kv[0], kv[1]), objects.items()))


def triples(ds: OssIterableDataset) -> list[tuple[str, int, bytes]]:
    return [(o.key, o.size, o.read()) for o in ds]


def listing_order(objects: dict[str, bytes]) -> list[tuple[str, int, bytes]]:
    return [(k, len(objects[k]), objects[k]) for k in sorted(objects, key=str.encode)]


@pytest.fixture
def awkward(oss_server: OssServer, bucket: str) -> dict[str, bytes]:
    objects = {
        k: (b"" if k.endswith(("/", "zero")) else os.urandom(100 + i))
        for i, k in enumerate(AWKWARD_KEYS)
    }
    upload(oss_server, bucket, objects)
    return objects


def test_awkward_keys_through_from_prefix(
    oss_server: OssServer, bucket: str, awkward: dict[str, bytes], cred_path: str
) -> None:
    got = triples(from_prefix(oss_server, f"oss://{bucket}/odd/", cred_path))
    assert got == listing_order(awkward)


def test_awkward_keys_through_from_objects(
    oss_server: OssServer, bucket: str, awkward: dict[str, bytes], cred_path: str
) -> None:
    order = list(awkward)
    random.Random(7).shuffle(order)
    got = triples(from_objects(oss_server, [f"oss://{bucket}/{k}" for k in order], cred_path))
    assert got == [(k, len(awkward[k]), awkward[k]) for k in order]


@pytest.mark.parametrize(
    "prefix",
    ["odd/c+", "odd/100%", "odd/x=y&", "odd/tilde~semi;", "odd/日本語/", "odd/a ", "odd/d"],
)
def test_awkward_prefixes(
    oss_server: OssServer, bucket: str, awkward: dict[str, bytes], cred_path: str, prefix: str
) -> None:
    got = [o.key for o in from_prefix(oss_server, f"oss://{bucket}/{prefix}", cred_path)]
    want = sorted((k for k in awkward if k.startswith(prefix)), key=str.encode)
    assert want, "the prefix should match something"
    assert got == want


def test_more_than_one_page(oss_server: OssServer, bucket: str, cred_path: str) -> None:
    objects = {f"many/{i:05d}.bin": i.to_bytes(4, "big") * (i % 3) for i in range(1234)}
    upload(oss_server, bucket, objects)
    got = triples(from_prefix(oss_server, f"oss://{bucket}/many/", cred_path))
    assert got == listing_order(objects)


def test_whole_bucket_and_empty_prefix(oss_server: OssServer, bucket: str, cred_path: str) -> None:
    objects = {"a": b"1", "b/c": b"22", "b/d/": b"", "e.bin": os.urandom(5000)}
    upload(oss_server, bucket, objects)
    for uri in (f"oss://{bucket}/", f"oss://{bucket}"):
        assert triples(from_prefix(oss_server, uri, cred_path)) == listing_order(objects)
    assert list(from_prefix(oss_server, f"oss://{bucket}/nothing-here/", cred_path)) == []


def test_zero_byte_objects_are_yielded(oss_server: OssServer, bucket: str, cred_path: str) -> None:
    objects = {f"z/{i}": b"" for i in range(5)} | {"z/full": b"x" * 10}
    upload(oss_server, bucket, objects)
    got = triples(from_prefix(oss_server, f"oss://{bucket}/z/", cred_path))
    assert got == listing_order(objects)
    assert [o.size for o in from_objects(oss_server, f"oss://{bucket}/z/0", cred_path)] == [0]


def test_from_objects_keeps_input_order_across_sizes(
    oss_server: OssServer, bucket: str, cred_path: str
) -> None:
    rng = random.Random(3)
    objects = {f"ord/{i}": os.urandom(rng.choice([0, 10, 1000, 300_000])) for i in range(120)}
    upload(oss_server, bucket, objects)
    order = list(objects)
    rng.shuffle(order)
    uris = (f"oss://{bucket}/{k}" for k in order)  # a one-shot generator
    ds = from_objects(oss_server, uris, cred_path)
    want = [(k, len(objects[k]), objects[k]) for k in order]
    assert triples(ds) == want
    assert triples(ds) == want, "a second epoch yields the same objects"


def test_objects_across_buckets(oss_server: OssServer, bucket: str, cred_path: str) -> None:
    other = bucket[:-1] + ("x" if bucket[-1] != "x" else "y")
    oss_server.sdk_client().put_bucket(
        __import__("alibabacloud_oss_v2").PutBucketRequest(bucket=other)
    )
    oss_server.put(bucket, "k", b"one")
    oss_server.put(other, "k", b"two")
    got = [
        (o.bucket, o.read())
        for o in from_objects(oss_server, [f"oss://{other}/k", f"oss://{bucket}/k"], cred_path)
    ]
    assert got == [(other, b"two"), (bucket, b"one")]


def test_items_outlive_the_loop_and_default_transform_copies(
    oss_server: OssServer, bucket: str, cred_path: str
) -> None:
    oss_server.put(bucket, "keep/a", b"alpha")
    oss_server.put(bucket, "keep/b", b"beta")
    items = list(from_prefix(oss_server, f"oss://{bucket}/keep/", cred_path))
    assert all(isinstance(o, DataObject) for o in items)
    assert [o.read() for o in items] == [b"alpha", b"beta"]
    assert [o.label for o in items] == ["", ""]


def test_custom_transform(oss_server: OssServer, bucket: str, cred_path: str) -> None:
    oss_server.put(bucket, "t/a", b"alpha")

    def transform(obj: DataObject) -> tuple[str, str, int]:
        data = obj.read()
        return obj.key, obj.label, len(data)

    ds = from_prefix(oss_server, f"oss://{bucket}/t/", cred_path, transform=transform)
    assert list(ds) == [("t/a", "", 5)]


def test_security_token_credentials(oss_server: OssServer, bucket: str, tmp_path: Path) -> None:
    oss_server.control_keys(add=[{"id": "STS.tmpkey1", "secret": "stssecret1", "token": "tok-1"}])
    oss_server.put(bucket, "sts/a", b"sts")
    cred = oss_server.write_cred_file(
        tmp_path / "sts.json",
        AccessKeyId="STS.tmpkey1",
        AccessKeySecret="stssecret1",
        SecurityToken="tok-1",
        Expiration="2099-01-01T00:00:00Z",
    )
    assert triples(from_prefix(oss_server, f"oss://{bucket}/sts/", str(cred))) == [
        ("sts/a", 3, b"sts")
    ]
    without = oss_server.write_cred_file(
        tmp_path / "nosts.json", AccessKeyId="STS.tmpkey1", AccessKeySecret="stssecret1"
    )
    with pytest.raises(OssPermissionError, match="InvalidSecurityToken"):
        list(from_prefix(oss_server, f"oss://{bucket}/sts/", str(without)))


def test_cred_provider_and_environment(
    oss_server: OssServer, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    oss_server.put(bucket, "p/a", b"x")

    class Provider:
        def get_credentials(self) -> SimpleNamespace:
            return SimpleNamespace(
                access_key_id=oss_server.access_key_id,
                access_key_secret=oss_server.access_key_secret,
                security_token=None,
            )

    uri = f"oss://{bucket}/p/"
    ds = OssIterableDataset.from_prefix(
        uri, endpoint=oss_server.endpoint, region=oss_server.region, cred_provider=Provider()
    )
    assert [o.key for o in ds] == ["p/a"]

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("OSS_ACCESS_KEY_ID", oss_server.access_key_id)
    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", oss_server.access_key_secret)
    monkeypatch.setenv("OSS_REGION", oss_server.region)
    ds = OssIterableDataset.from_prefix(uri, endpoint=oss_server.endpoint)
    assert [o.key for o in ds] == ["p/a"]


def test_wrong_secret_is_a_permission_error_naming_the_code(
    oss_server: OssServer, bucket: str, tmp_path: Path
) -> None:
    oss_server.put(bucket, "w/a", b"x")
    bad = oss_server.write_cred_file(tmp_path / "bad.json", AccessKeySecret="wrong-secret-123")
    for ds in (
        from_prefix(oss_server, f"oss://{bucket}/w/", str(bad)),
        from_objects(oss_server, [f"oss://{bucket}/w/a"], str(bad)),
    ):
        with pytest.raises(OssPermissionError) as info:
            list(ds)
        err = info.value
        assert isinstance(err, PermissionError)
        assert err.code == "SignatureDoesNotMatch" and err.status == 403
        assert "SignatureDoesNotMatch" in str(err) and bucket in str(err)
        assert err.request_id and err.request_id in str(err)
        assert "wrong-secret-123" not in str(err) and "wrong-secret-123" not in repr(err)


def test_missing_key_is_not_found_naming_the_key(
    oss_server: OssServer, bucket: str, cred_path: str
) -> None:
    oss_server.put(bucket, "m/present", b"here")
    uris = [f"oss://{bucket}/m/present", f"oss://{bucket}/m/absent.png"]
    it = iter(from_objects(oss_server, uris, cred_path))
    assert next(it).read() == b"here", "objects before the failure are delivered"
    with pytest.raises(OssNotFoundError) as info:
        next(it)
    err = info.value
    assert isinstance(err, FileNotFoundError)
    assert err.code == "NoSuchKey" and err.key == "m/absent.png" and err.bucket == bucket
    assert f"oss://{bucket}/m/absent.png" in str(err) and "NoSuchKey" in str(err)


def test_missing_bucket_is_not_found(oss_server: OssServer, cred_path: str) -> None:
    with pytest.raises(OssNotFoundError, match="NoSuchBucket"):
        list(from_prefix(oss_server, "oss://no-such-bucket-here/x/", cred_path))


def test_bad_uri_in_a_generator_fails_at_construction(
    oss_server: OssServer, bucket: str, cred_path: str
) -> None:
    uris = (u for u in [f"oss://{bucket}/g/a", "s3://elsewhere/b"])
    with pytest.raises(OssConfigError, match=r"s3://elsewhere/b.*oss://"):
        from_objects(oss_server, uris, cred_path)


def test_bad_uri_in_a_lazy_iterable_fails_at_its_position(
    oss_server: OssServer, bucket: str, cred_path: str
) -> None:
    oss_server.put(bucket, "g/a", b"a")

    class Uris:  # re-iterable but not a list: read lazily, once per epoch
        def __iter__(self) -> Iterator[str]:
            yield f"oss://{bucket}/g/a"
            yield "s3://elsewhere/b"

    it = iter(from_objects(oss_server, Uris(), cred_path))
    assert next(it).key == "g/a", "objects before the bad URI are delivered"
    with pytest.raises(OssConfigError, match=r"s3://elsewhere/b.*oss://"):
        next(it)


def test_requests_in_flight_follow_prefetch_concurrency(tmp_path: Path) -> None:
    # A slow server makes the pipeline's depth visible in the server's own in-flight counter.
    server = start_oss_server(tmp_path / "slow-root", "--delay-ms", "40")
    try:
        bucket = "slow-bucket"
        server.sdk_client().put_bucket(
            __import__("alibabacloud_oss_v2").PutBucketRequest(bucket=bucket)
        )
        objects = {f"s/{i:03d}": os.urandom(2000) for i in range(64)}
        upload(server, bucket, objects)
        config = tmp_path / "config.json"
        config.write_text(json.dumps({"datasetConfig": {"prefetchConcurrency": 6}}))
        cred = str(server.write_cred_file(tmp_path / "cred.json"))
        uris = [f"oss://{bucket}/{k}" for k in objects]
        server.reset_stats()
        ds = from_objects(server, uris, cred, config_path=str(config))
        assert triples(ds) == [(k, 2000, v) for k, v in objects.items()]
        stats = server.stats()
        # Several in flight (a loaded machine may not reach all 6), never more than configured:
        # +1 because the server counts a request until its handler returns, which can be just
        # after the client has every byte and has started the next one.
        assert 3 <= stats["max_in_flight"] <= 6 + 1, stats
        assert stats["connections_total"] <= 6 + 2, "connections are reused, not one per GET"
    finally:
        stop_oss_server(server)
