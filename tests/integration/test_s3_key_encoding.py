"""Keys that need encoding — `+`, `%`, spaces, `?`, `#`, `=`, `&`, non-ASCII — over s3://, against
moto (tests/moto_server.py), which checks SigV4 and encodes listings as AWS does (s3s-fs does
not: its listings alter such keys). They must be listed, read and written exactly, and each
request's signature must cover the key as S3 canonicalises it. Fixtures are written and
results read back with minio."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from minio.error import S3Error
from moto_server import MotoServer, running_moto

from osstorchconnector import DataObject, OssClient, OssIterableDataset
from osstorchconnector.exceptions import OssPermissionError

BUCKET = "key-encoding"
NAMES = [
    "a+b.bin",
    "a b.bin",
    "100%.bin",
    "%2B.bin",
    "%41.bin",
    "x=y&z.bin",
    "q?.bin",
    "#hash.bin",
    "~tilde.bin",
    "semi;colon,comma.bin",
    "star*(paren)'quote'.bin",
    "über/ñandú.bin",
    "dir with space/ + /end.bin",
]


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with running_moto(log) as server:
        server.client().make_bucket(BUCKET)
        yield server


@pytest.fixture(scope="module")
def written(moto: MotoServer) -> dict[str, bytes]:
    data = {f"k/{name}": f"body of {name}".encode() * (i + 1) for i, name in enumerate(NAMES)}
    for key, body in data.items():
        moto.client().put_object(BUCKET, key, io.BytesIO(body), len(body))
    return data


@pytest.fixture
def cred(moto: MotoServer, tmp_path: Path) -> str:
    path = tmp_path / "cred.json"
    path.write_text(
        json.dumps({"AccessKeyId": moto.access_key, "AccessKeySecret": moto.secret_key})
    )
    return str(path)


def key_and_body(obj: DataObject) -> tuple[str, bytes]:
    return obj.key, obj.read()


def test_moto_checks_signatures(moto: MotoServer) -> None:
    wrong = type(moto)(moto.endpoint, moto.access_key, "not-the-secret", moto.log_path)
    with pytest.raises(S3Error, match="SignatureDoesNotMatch"):
        wrong.client().list_objects(BUCKET).__next__()


def test_such_keys_are_listed_and_read_exactly(
    moto: MotoServer, written: dict[str, bytes], cred: str
) -> None:
    ds = OssIterableDataset.from_prefix(
        f"s3://{BUCKET}/k/", moto.endpoint, transform=key_and_body, cred_path=cred
    )
    assert dict(ds) == written
    # The same keys named one by one: each GET signed over the key as S3 canonicalises it.
    uris = [f"s3://{BUCKET}/{key}" for key in written]
    by_uri = OssIterableDataset.from_objects(
        uris, moto.endpoint, transform=key_and_body, cred_path=cred
    )
    assert list(by_uri) == list(written.items())


def test_such_keys_are_written_exactly(moto: MotoServer, cred: str) -> None:
    client = OssClient(moto.endpoint, cred_path=cred, protocol="s3")
    data = {f"w/{name}": name.encode() * 3 for name in NAMES}
    for key, body in data.items():
        with client.put_object(BUCKET, key) as writer:
            writer.write(body)
    minio = moto.client()
    listed = sorted(o.object_name or "" for o in minio.list_objects(BUCKET, "w/", recursive=True))
    assert listed == sorted(data)
    for key, body in data.items():
        assert minio.get_object(BUCKET, key).read() == body, key
    assert [o.key for o in client.list_objects(BUCKET, "w/")] == sorted(data)


def test_a_wrong_secret_is_refused_naming_the_uri(
    moto: MotoServer, written: dict[str, bytes], tmp_path: Path
) -> None:
    path = tmp_path / "wrong.json"
    path.write_text(json.dumps({"AccessKeyId": moto.access_key, "AccessKeySecret": "wrong"}))
    key = next(iter(written))
    ds = OssIterableDataset.from_objects(f"s3://{BUCKET}/{key}", moto.endpoint, cred_path=str(path))
    with pytest.raises(OssPermissionError, match="SignatureDoesNotMatch") as failed:
        list(ds)
    assert f"s3://{BUCKET}/{key}" in str(failed.value)
