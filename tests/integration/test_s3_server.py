"""The S3 test server itself (`s3_server`, s3s-fs): a real S3 server on 127.0.0.1 that stores and
lists what it is given and refuses what is not signed with its key. Driven only with the `minio`
client; the s3s-fs quirks listed in tests/s3_server.py are pinned here, so a new s3s-fs that
changes one shows up as a failure here rather than as a puzzle in a client test."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from typing import Any

import pytest
from minio.error import S3Error
from s3_server import S3Server

# Keys a client has to get right: `+`, spaces (and both), `%`, sub-delimiters, UTF-8,
# directories, an empty object and one of several parts' worth of bytes.
OBJECTS: dict[str, bytes] = {
    "plain.txt": b"plain",
    "dir/a b.txt": b"space",
    "dir/a+b.txt": b"plus",
    "dir/c+d e.bin": b"plus and space",
    "dir/x%2By": b"percent",
    "dir/p&q=r;s,t!(u)*'~$v@w": b"sub-delimiters",
    "dir/sub/ключ 数据.txt": b"utf-8",
    "empty": b"",
    "big/random.bin": os.urandom(3 << 20),
}


def put_all(server: S3Server, bucket: str, objects: dict[str, bytes]) -> None:
    client = server.client()
    for key, data in objects.items():
        client.put_object(bucket, key, io.BytesIO(data), len(data))


def get(server: S3Server, bucket: str, key: str) -> bytes:
    response = server.client().get_object(bucket, key)
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()


def test_the_server_listens_on_loopback_and_verifies_signatures(s3_server: S3Server) -> None:
    assert s3_server.endpoint.startswith("http://127.0.0.1:")
    assert s3_server.region == "us-east-1"
    assert s3_server.access_key and len(s3_server.secret_key) >= 16
    s3_server.check_alive()


def test_objects_round_trip_and_list_with_awkward_keys(s3_server: S3Server, s3_bucket: str) -> None:
    put_all(s3_server, s3_bucket, OBJECTS)
    for key, data in OBJECTS.items():
        assert get(s3_server, s3_bucket, key) == data, key
        assert s3_server.client().stat_object(s3_bucket, key).size == len(data), key
    assert s3_server.list_keys(s3_bucket) == sorted(OBJECTS)
    assert s3_server.list_keys(s3_bucket, "dir/a") == ["dir/a b.txt", "dir/a+b.txt"]
    assert s3_server.list_keys(s3_bucket, "dir/sub/") == ["dir/sub/ключ 数据.txt"]
    assert s3_server.list_keys(s3_bucket, "nothing/") == []


def test_a_listing_pages_with_continuation_tokens(s3_server: S3Server, s3_bucket: str) -> None:
    keys = [f"page/{i:04d}+x" for i in range(25)]
    put_all(s3_server, s3_bucket, dict.fromkeys(keys, b"x"))
    client = s3_server.client()
    query: dict[str, str | list[str] | tuple[str]] = {
        "list-type": "2",
        "prefix": "page/",
        "max-keys": "10",
    }
    first = client._execute("GET", s3_bucket, query_params=query).data.decode()
    assert "<KeyCount>10</KeyCount>" in first and "<IsTruncated>true</IsTruncated>" in first
    assert "<NextContinuationToken>" in first
    # minio follows NextContinuationToken: 25 keys at 10 a page is three pages.
    listed = client._list_objects(s3_bucket, prefix="page/", delimiter="/", max_keys=10)
    assert [o.object_name for o in listed] == keys


def test_quirk_an_empty_delimiter_collapses_every_key(s3_server: S3Server, s3_bucket: str) -> None:
    """minio's recursive listing sends `delimiter=`; s3s-fs answers with one-character common
    prefixes instead of the keys (S3 ignores an empty delimiter)."""
    put_all(s3_server, s3_bucket, {"dir/a": b"", "dir/b": b"", "plain": b""})
    recursive = s3_server.client().list_objects(
        s3_bucket, recursive=True, use_url_encoding_type=False
    )
    assert [o.object_name for o in recursive] == ["d", "p"]
    assert s3_server.list_keys(s3_bucket) == ["dir/a", "dir/b", "plain"]


def test_quirk_url_encoding_is_echoed_but_keys_come_back_raw(
    s3_server: S3Server, s3_bucket: str
) -> None:
    """With `encoding-type=url` s3s-fs says the keys are URL-encoded but sends them as they are,
    so a client decoding them as S3 encodes them (minio: `unquote_plus`) alters `+` and `%XX`."""
    put_all(s3_server, s3_bucket, {k: b"" for k in ["a b", "a+b", "x%2By"]})
    client = s3_server.client()

    def names(url_encoding: bool) -> list[str]:
        listed = client.list_objects(s3_bucket, use_url_encoding_type=url_encoding)
        return [o.object_name or "" for o in listed]

    assert names(url_encoding=False) == ["a b", "a+b", "x%2By"]
    assert names(url_encoding=True) == ["a b", "a b", "x+y"]
    raw = client._execute(  # the wire answer, to show the keys are not encoded
        "GET", s3_bucket, query_params={"list-type": "2", "encoding-type": "url"}
    ).data.decode()
    assert "<Key>a+b</Key>" in raw and "<Key>x%2By</Key>" in raw
    assert "<EncodingType>url</EncodingType>" in raw


@pytest.mark.parametrize(
    ("access_key", "secret_key", "code"),
    [
        (None, "not-the-secret", "SignatureDoesNotMatch"),
        ("AKIANOTAKNOWNKEY0001", None, "NotSignedUp"),  # AWS says InvalidAccessKeyId
        ("", "", "AccessDenied"),  # anonymous: an unsigned request
    ],
    ids=["wrong-secret", "unknown-access-key", "unsigned"],
)
def test_requests_not_signed_with_the_servers_key_are_refused_with_403(
    s3_server: S3Server, s3_bucket: str, access_key: str | None, secret_key: str | None, code: str
) -> None:
    put_all(s3_server, s3_bucket, {"kept": b"data"})
    intruder = s3_server.client(access_key=access_key, secret_key=secret_key)
    attempts: dict[str, Callable[[], Any]] = {
        "list": lambda: list(intruder.list_objects(s3_bucket, use_url_encoding_type=False)),
        "get": lambda: intruder.get_object(s3_bucket, "kept"),
        "put": lambda: intruder.put_object(s3_bucket, "planted", io.BytesIO(b"x"), 1),
    }
    for what, attempt in attempts.items():
        with pytest.raises(S3Error) as refused:
            attempt()
        assert refused.value.response.status == 403, what
        assert refused.value.code == code, what
    # HEAD answers have no body: minio names the 403 AccessDenied whatever the cause.
    with pytest.raises(S3Error) as refused:
        intruder.stat_object(s3_bucket, "kept")
    assert refused.value.response.status == 403
    assert s3_server.list_keys(s3_bucket) == ["kept"]
    assert get(s3_server, s3_bucket, "kept") == b"data"


def test_a_missing_object_is_404_no_such_key(s3_server: S3Server, s3_bucket: str) -> None:
    with pytest.raises(S3Error) as missing:
        get(s3_server, s3_bucket, "absent")
    assert (missing.value.response.status, missing.value.code) == (404, "NoSuchKey")
