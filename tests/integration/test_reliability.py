"""Reliability without fault injection: STS tokens rotated mid-epoch, a skewed server clock,
permanent 403/404 failing fast, a stalled server timing out, Ctrl-C, and no secret in log or
audit files."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import OssServer, interrupt, python_child, start_oss_server, stop_oss_server
from osstorchconnector import (
    OssIterableDataset,
    OssNotFoundError,
    OssPermissionError,
    OssTimeoutError,
)

BUCKET = "reliability"
COUNT = 60


@pytest.fixture
def server(tmp_path: Path) -> Iterator[OssServer]:
    # Its own server: these tests change keys, clock and delays.
    srv = start_oss_server(tmp_path / "root")
    srv.sdk_client().put_bucket(__import__("alibabacloud_oss_v2").PutBucketRequest(bucket=BUCKET))
    for i in range(COUNT):
        srv.put(BUCKET, f"r/{i:03d}", f"object {i}".encode() * 50)
    try:
        yield srv
    finally:
        stop_oss_server(srv)


def config(tmp_path: Path, **extra: Any) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(extra))
    return str(path)


def test_sts_token_rotated_mid_epoch(server: OssServer, tmp_path: Path) -> None:
    server.control_keys(add=[{"id": "STS.one", "secret": "secret-one", "token": "token-one"}])
    cred = tmp_path / "cred.json"
    server.write_cred_file(
        cred, AccessKeyId="STS.one", AccessKeySecret="secret-one", SecurityToken="token-one"
    )
    ds = OssIterableDataset.from_prefix(
        f"oss://{BUCKET}/r/",
        endpoint=server.endpoint,
        region=server.region,
        cred_path=str(cred),
        config_path=config(tmp_path, datasetConfig={"prefetchConcurrency": 2}),
    )
    got = []
    for i, obj in enumerate(ds):
        got.append((obj.key, obj.read()))
        if i == COUNT // 3:
            # What an STS sidecar does: write the new token, then the old one dies.
            server.control_keys(
                add=[{"id": "STS.two", "secret": "secret-two", "token": "token-two"}]
            )
            server.write_cred_file(
                cred, AccessKeyId="STS.two", AccessKeySecret="secret-two", SecurityToken="token-two"
            )
            server.control_keys(expire=["STS.one"])
    assert got == [(f"r/{i:03d}", f"object {i}".encode() * 50) for i in range(COUNT)]
    assert server.stats()["errors_by_code"].get("SecurityTokenExpired", 0) >= 1


def test_skewed_server_clock_is_learnt(server: OssServer, tmp_path: Path) -> None:
    server.control("POST", "clock", {"offset_s": 3600})
    server.reset_stats()
    ds = OssIterableDataset.from_objects(
        [f"oss://{BUCKET}/r/{i:03d}" for i in range(10)],
        endpoint=server.endpoint,
        region=server.region,
        cred_path=str(server.write_cred_file(tmp_path / "cred.json")),
        config_path=config(tmp_path, datasetConfig={"prefetchConcurrency": 1}),
    )
    assert [o.read() for o in ds] == [f"object {i}".encode() * 50 for i in range(10)]
    skewed = server.stats()["errors_by_code"].get("RequestTimeTooSkewed", 0)
    assert 1 <= skewed <= 2, "learnt from the first refusal, not refused object after object"


def test_permanent_errors_fail_fast_without_retries(server: OssServer, tmp_path: Path) -> None:
    opts: dict[str, Any] = {"endpoint": server.endpoint, "region": server.region}
    good = str(server.write_cred_file(tmp_path / "good.json"))
    bad = str(server.write_cred_file(tmp_path / "bad.json", AccessKeySecret="not-the-secret"))
    server.reset_stats()
    with pytest.raises(OssNotFoundError):
        list(OssIterableDataset.from_objects(f"oss://{BUCKET}/absent", cred_path=good, **opts))
    with pytest.raises(OssPermissionError):
        list(OssIterableDataset.from_objects(f"oss://{BUCKET}/r/000", cred_path=bad, **opts))
    assert server.stats()["requests"] == 2, "one attempt each: 404 and 403 are not retried"


def test_a_stalled_server_times_out(server: OssServer, tmp_path: Path) -> None:
    server.control("POST", "delay", {"delay_ms": 60_000})
    ds = OssIterableDataset.from_objects(
        f"oss://{BUCKET}/r/000",
        endpoint=server.endpoint,
        region=server.region,
        cred_path=str(server.write_cred_file(tmp_path / "cred.json")),
        config_path=config(tmp_path, retryConfig={"firstByteTimeoutMs": 300, "maxAttempts": 2}),
    )
    started = time.monotonic()
    with pytest.raises(OssTimeoutError, match="firstByteTimeoutMs") as info:
        list(ds)
    assert isinstance(info.value, TimeoutError)
    assert f"oss://{BUCKET}/r/000" in str(info.value)
    assert (info.value.bucket, info.value.key) == (BUCKET, "r/000")
    # Two attempts of 0.3 s and one backoff of at most 0.2 s: nowhere near the 60 s stall.
    assert time.monotonic() - started < 10


def test_ctrl_c_interrupts_a_waiting_iteration(server: OssServer, tmp_path: Path) -> None:
    server.control("POST", "delay", {"delay_ms": 60_000})
    script = f"""
import sys
from osstorchconnector import OssIterableDataset
ds = OssIterableDataset.from_objects("oss://{BUCKET}/r/000", endpoint="{server.endpoint}",
    region="{server.region}", cred_path="{server.write_cred_file(tmp_path / "c.json")}")
print("waiting", flush=True)
try:
    list(ds)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(7)
"""
    with python_child(script) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "waiting"
        time.sleep(0.5)  # well inside the 60 s stall
        out, err = interrupt(proc, "the iteration")
    assert proc.returncode == 7, err
    assert out.strip() == "interrupted"


def test_no_secret_in_logs_or_audit(server: OssServer, tmp_path: Path) -> None:
    server.control_keys(
        add=[
            {"id": "STS.audit", "secret": "AuditSecret0123456789", "token": "AuditToken0123456789"}
        ]
    )
    log_path = tmp_path / "connector.log"
    audit_path = tmp_path / "audit.log"
    cfg = config(
        tmp_path,
        logLevel=0,
        logPath=str(log_path),
        auditPath=str(audit_path),
        retryConfig={"maxAttempts": 2},
    )
    cred = server.write_cred_file(
        tmp_path / "cred.json",
        AccessKeyId="STS.audit",
        AccessKeySecret="AuditSecret0123456789",
        SecurityToken="AuditToken0123456789",
    )
    opts: dict[str, Any] = {
        "endpoint": server.endpoint,
        "region": server.region,
        "cred_path": str(cred),
        "config_path": cfg,
    }
    assert len(list(OssIterableDataset.from_prefix(f"oss://{BUCKET}/r/", **opts))) == COUNT
    server.control("POST", "clock", {"offset_s": 3600})  # a refused and retried attempt
    with pytest.raises(OssNotFoundError):
        list(OssIterableDataset.from_objects(f"oss://{BUCKET}/missing", **opts))
    audit = audit_path.read_text()
    lines = [line.split("\t") for line in audit.splitlines()]
    assert len(lines) >= COUNT + 2
    assert all(len(fields) == 8 for fields in lines)
    gets = [f for f in lines if f[1] == "GET" and f[2].startswith(f"oss://{BUCKET}/r/")]
    assert {f[3] for f in gets} >= {"200"} and all(f[6] for f in gets), "status and request id"
    assert any(f[3] == "404" and f[7] == "NoSuchKey" for f in lines)
    assert any(f[7] == "RequestTimeTooSkewed" for f in lines)
    logged = log_path.read_text() if log_path.exists() else ""
    assert "RequestTimeTooSkewed" in logged, "the retry is logged"
    for text in (audit, logged):
        assert "AuditSecret0123456789" not in text
        assert "AuditToken0123456789" not in text
