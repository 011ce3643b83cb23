"""Bad input fails at construction with an error that names the thing — no server needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from osstorchconnector import OssConfigError, OssIterableDataset

ENDPOINT = "http://oss-cn-beijing-internal.aliyuncs.com"


@pytest.fixture
def cred_file(tmp_path: Path) -> str:
    path = tmp_path / "cred.json"
    path.write_text(json.dumps({"AccessKeyId": "LTAIexample", "AccessKeySecret": "s3cr3tvalue"}))
    return str(path)


@pytest.fixture(autouse=True)
def _no_ambient_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", "OSS_SESSION_TOKEN", "OSS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.mark.parametrize(
    ("uri", "needle"),
    [
        ("gs://bucket/prefix/", "must start with oss:// or s3://"),
        ("bucket/prefix/", "must start with oss:// or s3://"),
        ("oss:///prefix/", "bucket name is empty"),
        ("oss://", "bucket name is empty"),
        ("oss://Upper_Case/x", "only lowercase"),
    ],
)
def test_bad_prefix_uri(uri: str, needle: str, cred_file: str) -> None:
    with pytest.raises(OssConfigError, match=needle) as info:
        OssIterableDataset.from_prefix(uri, endpoint=ENDPOINT, cred_path=cred_file)
    assert repr(uri).strip("'") in str(info.value)


def test_bad_uri_in_object_list_is_named(cred_file: str) -> None:
    uris = ["oss://bkt/a.png", "http://bkt/b.png"]
    with pytest.raises(OssConfigError, match=r"http://bkt/b\.png.*oss://"):
        OssIterableDataset.from_objects(uris, endpoint=ENDPOINT, cred_path=cred_file)
    with pytest.raises(OssConfigError, match="must start with oss://"):
        OssIterableDataset.from_objects("bkt/a.png", endpoint=ENDPOINT, cred_path=cred_file)


def test_missing_cred_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "credentials"
    with pytest.raises(OssConfigError, match=str(missing)):
        OssIterableDataset.from_prefix("oss://bkt/p/", endpoint=ENDPOINT, cred_path=str(missing))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("AccessKeyId=abc\nAccessKeySecret=s3cr3tvalue\n", "not a JSON object"),
        ('{"AccessKeyId": "abc"}', "AccessKeySecret is missing"),
        ('{"AccessKeyId": "", "AccessKeySecret": "s3cr3tvalue"}', "AccessKeyId is missing"),
        (
            '{"AccessKeyId": "a", "AccessKeySecret": "s3cr3tvalue", "Expiration": "tomorrow"}',
            "Expiration",
        ),
    ],
)
def test_malformed_cred_file(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "cred.json"
    path.write_text(text)
    with pytest.raises(OssConfigError, match=needle) as info:
        OssIterableDataset.from_prefix("oss://bkt/p/", endpoint=ENDPOINT, cred_path=str(path))
    assert str(path) in str(info.value)
    assert "s3cr3tvalue" not in str(info.value)


def test_no_credentials_anywhere_lists_what_was_tried() -> None:
    with pytest.raises(OssConfigError) as info:
        OssIterableDataset.from_prefix("oss://bkt/p/", endpoint=ENDPOINT)
    message = str(info.value)
    assert "OSS_ACCESS_KEY_ID" in message
    assert ".alibabacloud/credentials" in message


def test_environment_credentials_are_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OSS_ACCESS_KEY_ID", "LTAIenv")
    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", "envsecret")
    OssIterableDataset.from_prefix("oss://bkt/p/", endpoint=ENDPOINT)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("{not json", "not valid JSON"),
        ('{"logLevel": 9}', "logLevel must be between 0 and 3"),
        ('{"datasetConfig": {"prefetchConcurrency": "many"}}', "prefetchConcurrency"),
        ('["datasetConfig"]', "JSON object"),
    ],
)
def test_malformed_config_file(tmp_path: Path, cred_file: str, text: str, needle: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(OssConfigError, match=needle) as info:
        OssIterableDataset.from_prefix(
            "oss://bkt/p/", endpoint=ENDPOINT, cred_path=cred_file, config_path=str(path)
        )
    assert str(path) in str(info.value)


def test_missing_config_file_is_named(tmp_path: Path, cred_file: str) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(OssConfigError, match=str(path)):
        OssIterableDataset.from_prefix(
            "oss://bkt/p/", endpoint=ENDPOINT, cred_path=cred_file, config_path=str(path)
        )


def test_unknown_config_keys_are_warned_about(
    tmp_path: Path, cred_file: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"logLevel": 1, "datasetConfig": {"prefetchConcurency": 8}}')
    OssIterableDataset.from_prefix(
        "oss://bkt/p/", endpoint=ENDPOINT, cred_path=cred_file, config_path=str(path)
    )
    assert any("prefetchConcurency" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "endpoint", ["http://127.0.0.1:9000", "http://localhost:9000", "oss-accelerate.aliyuncs.com"]
)
def test_region_not_inferable(endpoint: str, cred_file: str) -> None:
    with pytest.raises(OssConfigError, match=r"region=") as info:
        OssIterableDataset.from_prefix("oss://bkt/p/", endpoint=endpoint, cred_path=cred_file)
    assert endpoint in str(info.value)


def test_region_argument_or_environment_suffices(
    monkeypatch: pytest.MonkeyPatch, cred_file: str
) -> None:
    OssIterableDataset.from_prefix(
        "oss://bkt/p/", endpoint="http://127.0.0.1:9000", cred_path=cred_file, region="cn-x"
    )
    monkeypatch.setenv("OSS_REGION", "cn-hangzhou")
    OssIterableDataset.from_prefix(
        "oss://bkt/p/", endpoint="http://127.0.0.1:9000", cred_path=cred_file
    )


# An empty endpoint is not bad: it is the local-path mode (tests/integration/test_local_mode.py).
@pytest.mark.parametrize(
    ("endpoint", "needle"),
    [("ftp://oss-cn-x.aliyuncs.com", "scheme"), ("http://h:99999", "port")],
)
def test_bad_endpoint(endpoint: str, needle: str, cred_file: str) -> None:
    with pytest.raises(OssConfigError, match=needle):
        OssIterableDataset.from_prefix("oss://bkt/p/", endpoint=endpoint, cred_path=cred_file)


def test_cred_provider_without_get_credentials(cred_file: str) -> None:
    with pytest.raises(OssConfigError, match="get_credentials"):
        OssIterableDataset.from_prefix(
            "oss://bkt/p/", endpoint=ENDPOINT, cred_provider=object(), cred_path=cred_file
        )


@pytest.mark.parametrize("factory", ["from_prefix", "from_objects"])
def test_a_misspelt_keyword_is_named(factory: str, cred_file: str) -> None:
    make = getattr(OssIterableDataset, factory)
    with pytest.raises(TypeError, match=r"cred_pth.*known: config_path, cred_path") as info:
        make("oss://bucket/prefix/", ENDPOINT, cred_pth=cred_file)
    assert f"OssIterableDataset.{factory}()" in str(info.value)
