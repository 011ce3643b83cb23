"""Shared test fixtures.

`oss_server` (session): the local OSS-protocol server of `tests/oss_server`, which checks every
request's V4 signature with the official SDK's signer. Fixture data is uploaded through the
official SDK (`alibabacloud_oss_v2`), never through our own client, so a passing client test
means our client agrees with the SDK, not merely with itself.

`s3_server` (session): s3s-fs on 127.0.0.1, an S3 server that checks every request's AWS SigV4
(`tests/s3_server.py`, with its quirks); its fixtures are written with the `minio` client.
"""

from __future__ import annotations

import io
import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import alibabacloud_oss_v2 as oss  # type: ignore[import-untyped]
import pytest

TESTS_DIR = Path(__file__).resolve().parent
# `oss_server` (a package) and `s3_server` live in tests/, importable whatever pytest's import mode.
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from s3_server import (  # noqa: E402
    S3Server,
    S3sFsUnavailable,
    start_s3_server,
    stop_process,
    stop_s3_server,
)

REGION = "cn-hangzhou"
ACCESS_KEY_ID = "LTAItestAK0001"
# Host names `<bucket>.localhost[:port]` address buckets virtual-hosted style on this server.
VHOST_SUFFIX = "localhost"
_READY_TIMEOUT_S = 20.0


# Every secret or token a test hands to the connector; the session ends by checking that none
# of them appears in any log or audit file the suite wrote.
KNOWN_SECRETS: set[str] = set()


@pytest.fixture(scope="session", autouse=True)
def _no_secret_in_written_logs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield
    base = tmp_path_factory.getbasetemp()
    leaks = []
    for path in base.rglob("*.log"):
        if path.name.endswith(".stderr.log"):
            continue  # the test server's own diagnostics, not the connector's
        text = path.read_text("utf-8", errors="replace")
        leaks += [f"{path}: {s[:4]}…" for s in KNOWN_SECRETS if s in text]
    assert not leaks, f"credentials found in log/audit files: {leaks}"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "oss_server: uses the local OSS-protocol test server (tests/oss_server)"
    )


@dataclass
class OssServer:
    """A running `python -m oss_server` subprocess and helpers to drive it."""

    endpoint: str  # "http://127.0.0.1:PORT"
    region: str
    access_key_id: str
    access_key_secret: str
    root: Path
    process: subprocess.Popen[bytes]
    stderr_path: Path
    _clients: dict[tuple[str, str, str | None], oss.Client] = field(default_factory=dict)

    @property
    def port(self) -> int:
        return int(self.endpoint.rsplit(":", 1)[1])

    def sdk_client(
        self,
        access_key_id: str | None = None,
        access_key_secret: str | None = None,
        security_token: str | None = None,
    ) -> oss.Client:
        """An official-SDK client for this server (path style, as for any IP endpoint)."""
        ident = (
            access_key_id or self.access_key_id,
            access_key_secret or self.access_key_secret,
            security_token,
        )
        if ident not in self._clients:
            cfg = oss.config.load_default()
            cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(*ident)
            cfg.region = self.region
            cfg.endpoint = self.endpoint
            cfg.use_path_style = True
            self._clients[ident] = oss.Client(cfg)
        return self._clients[ident]

    def put(self, bucket: str, key: str, data: bytes) -> None:
        """Upload through the official SDK (its signature is checked like any other)."""
        self.sdk_client().put_object(oss.PutObjectRequest(bucket=bucket, key=key, body=data))

    def get(self, bucket: str, key: str) -> bytes:
        """An object as the official SDK reads it (what a test reads back what ours wrote with)."""
        result = self.sdk_client().get_object(oss.GetObjectRequest(bucket=bucket, key=key))
        body: bytes = result.body.content
        return body

    def exists(self, bucket: str, key: str) -> bool:
        """Whether the official SDK's HeadObject finds the object."""
        try:
            self.sdk_client().head_object(oss.HeadObjectRequest(bucket=bucket, key=key))
        except oss.exceptions.OperationError as e:
            if "404" in str(e) or "NoSuchKey" in str(e):
                return False
            raise
        return True

    def pending_uploads(self, bucket: str) -> list[str]:
        """Upload ids of the bucket's multipart uploads not completed nor aborted (SDK)."""
        result = self.sdk_client().list_multipart_uploads(
            oss.ListMultipartUploadsRequest(bucket=bucket)
        )
        return [u.upload_id for u in (result.uploads or [])]

    def put_random(self, bucket: str, sizes: dict[str, int]) -> dict[str, bytes]:
        """Uploads random bytes of the given size under each key; returns what was uploaded."""
        data = {key: os.urandom(size) for key, size in sizes.items()}
        for key, value in data.items():
            self.put(bucket, key, value)
        return data

    def generate(self, bucket: str, key: str, size: int, seed: int = 0) -> dict[str, Any]:
        """Create an object server-side with `oss_server.generated_bytes(seed, 0, size)`.

        Returns {"bucket", "key", "size", "etag", "crc64": decimal str or None (> 1 GiB)}.
        """
        body = {"bucket": bucket, "key": key, "size": size, "seed": seed}
        result: dict[str, Any] = self.control("POST", "generate", body)
        return result

    def control_keys(
        self,
        add: list[dict[str, str]] | None = None,
        remove: list[str] | None = None,
        expire: list[str] | None = None,
    ) -> dict[str, Any]:
        """Change the server's key table: add [{"id", "secret", "token"?}], remove/expire ids.

        An expired key answers 403 SecurityTokenExpired; re-adding the id revives it.
        """
        body = {"add": add or [], "remove": remove or [], "expire": expire or []}
        result: dict[str, Any] = self.control("POST", "keys", body)
        return result

    def stats(self) -> dict[str, Any]:
        """Counters: requests, requests_by_method, responses_by_status, errors_by_code,
        in_flight, max_in_flight, bytes_sent, bytes_received, connections_open/_total."""
        result: dict[str, Any] = self.control("GET", "stats")
        return result

    def settled_stats(self, wait_s: float) -> dict[str, Any]:
        """The counters once no request is in flight, waiting up to `wait_s`: the server counts
        a request when it is done with it, which the client that got its answer (or a reset)
        may see first; a request stalled on purpose stays in flight."""
        deadline = time.monotonic() + wait_s
        while True:
            result: dict[str, Any] = self.control("GET", "stats?timeline=0")
            if result["in_flight"] == 0 or time.monotonic() > deadline:
                return result
            time.sleep(0.01)

    def reset_stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self.control("POST", "stats/reset", {})
        return result

    def set_faults(self, **plan: Any) -> dict[str, Any]:
        """Replace the server's fault plan (fields in tests/oss_server/faults.py), e.g.
        `set_faults(seed=1, p_503=0.2, p_reset=0.05, burst={"count": 10})`.

        Returns {"plan": the plan with defaults filled in, "state": {"faultable_requests",
        "burst_errors_sent", "burst_started_s", "burst_ended_s", "burst_active"}}; times are
        seconds on the stats clock (that of `in_flight_timeline`).
        """
        result: dict[str, Any] = self.control("POST", "faults", plan)
        return result

    def clear_faults(self) -> dict[str, Any]:
        """No more faults (latency from --delay-ms or the delay endpoint stays)."""
        return self.set_faults()

    def faults(self) -> dict[str, Any]:
        """The current plan and its progress, shaped as `set_faults` returns them."""
        result: dict[str, Any] = self.control("GET", "faults")
        return result

    def in_flight_timeline(self) -> list[tuple[float, int]]:
        """[(seconds since the last stats reset, requests in flight)] at every change (the
        latest 20,000 changes), starting with the level at the reset."""
        points = self.control("GET", "stats")["in_flight_timeline"]
        return [(float(t), int(n)) for t, n in points]

    @staticmethod
    def in_flight_between(
        timeline: list[tuple[float, int]], start_s: float, end_s: float
    ) -> dict[str, float]:
        """{"max", "mean"} of requests in flight over [start_s, end_s) of a timeline; the mean
        is weighted by time, so a brief spike does not count as high concurrency."""
        if end_s <= start_s:
            raise ValueError("empty interval")
        level, peak, area, at = 0, 0, 0.0, start_s
        for t, n in timeline:
            if t <= start_s:
                level = n
                continue
            if t >= end_s:
                break
            peak = max(peak, level)
            area += level * (t - at)
            level, at = n, t
        peak = max(peak, level)
        area += level * (end_s - at)
        return {"max": float(peak), "mean": area / (end_s - start_s)}

    def dataset_options(self, folder: Path, config: dict[str, Any]) -> dict[str, Any]:
        """Keyword arguments for a dataset on this server: credentials and the connector config
        `config` written as files in `folder`."""
        config_path = folder / "config.json"
        config_path.write_text(json.dumps(config), "utf-8")
        return {
            "endpoint": self.endpoint,
            "region": self.region,
            "cred_path": str(self.write_cred_file(folder / "cred.json")),
            "config_path": str(config_path),
        }

    def write_cred_file(self, path: str | os.PathLike[str], **overrides: str | None) -> Path:
        """Write the connector's credentials JSON for this server's key.

        `overrides` set or replace fields (AccessKeyId, AccessKeySecret, SecurityToken,
        Expiration); None removes one.
        """
        doc: dict[str, str | None] = {
            "AccessKeyId": self.access_key_id,
            "AccessKeySecret": self.access_key_secret,
            **overrides,
        }
        out = Path(path)
        out.write_text(json.dumps({k: v for k, v in doc.items() if v is not None}), "utf-8")
        for name in ("AccessKeySecret", "SecurityToken"):
            value = doc.get(name)
            if value and len(value) >= 8:
                KNOWN_SECRETS.add(value)
        return out

    def stderr_text(self) -> str:
        return self.stderr_path.read_text("utf-8", errors="replace")

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(
                f"oss_server exited with {self.process.returncode}; stderr:\n{self.stderr_text()}"
            )

    def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(f"{self.endpoint}/_control/{path}", data=data, method=method)
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())


def start_oss_server(root: Path, *extra_args: str) -> OssServer:
    """Start a server on a free port with one random key; `extra_args` go to its command line
    (e.g. "--delay-ms", "20", or more "--key AK:SK[:TOKEN]")."""
    root.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(24)
    stderr_path = root.parent / f"{root.name}.stderr.log"
    cmd = [
        sys.executable,
        "-m",
        "oss_server",
        "--root",
        str(root),
        "--port",
        "0",
        "--region",
        REGION,
        "--key",
        f"{ACCESS_KEY_ID}:{secret}",
        "--vhost-suffix",
        VHOST_SUFFIX,
        *extra_args,
    ]
    with open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(
            cmd, cwd=TESTS_DIR, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL
        )
    assert process.stdout is not None
    lines: queue.Queue[bytes] = queue.Queue()
    stdout = process.stdout
    # readline() cannot time out, so it runs on a thread and we wait on the queue.
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=_READY_TIMEOUT_S).decode("utf-8", errors="replace")
    except queue.Empty:
        line = ""
    if not line.startswith("READY http://"):
        _stop(process)
        raise RuntimeError(
            f"oss_server did not report READY (got {line!r}); stderr:\n"
            + stderr_path.read_text("utf-8", errors="replace")
        )
    return OssServer(
        endpoint=line.split()[1],
        region=REGION,
        access_key_id=ACCESS_KEY_ID,
        access_key_secret=secret,
        root=root,
        process=process,
        stderr_path=stderr_path,
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    stop_process(process)
    if process.stdout is not None:
        process.stdout.close()


def stop_oss_server(server: OssServer) -> None:
    """Stop the server; if it had died on its own, fail loudly with its stderr."""
    died = server.process.poll()
    _stop(server.process)
    if died is not None:
        raise RuntimeError(f"oss_server died (exit {died}); stderr:\n{server.stderr_text()}")


@pytest.fixture(scope="session")
def oss_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OssServer]:
    server = start_oss_server(tmp_path_factory.mktemp("oss-server") / "root")
    try:
        yield server
    finally:
        stop_oss_server(server)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """s3s-fs on a free loopback port, verifying SigV4 for one random key pair (region
    us-east-1). A server that cannot be built or started fails the test, never skips it."""
    try:
        server = start_s3_server(tmp_path_factory.mktemp("s3-server") / "root")
    except S3sFsUnavailable as e:
        pytest.fail(f"the S3 test server (s3s-fs) is unavailable: {e}", pytrace=False)
    KNOWN_SECRETS.add(server.secret_key)
    try:
        yield server
    finally:
        stop_s3_server(server)


@pytest.fixture
def s3_bucket(s3_server: S3Server, request: pytest.FixtureRequest) -> str:
    """A new, empty bucket on `s3_server` (created with minio) for this test alone."""
    name = make_bucket(request.node.name)
    s3_server.client().make_bucket(name)
    return name


@pytest.fixture
def s3_cred(s3_server: S3Server, tmp_path: Path) -> str:
    """A credentials JSON (the connector's format) with `s3_server`'s key pair."""
    path = tmp_path / "s3-cred.json"
    keys = {"AccessKeyId": s3_server.access_key, "AccessKeySecret": s3_server.secret_key}
    path.write_text(json.dumps(keys))
    return str(path)


def make_bucket(name_prefix: str = "test") -> str:
    """A fresh, valid, unused bucket name (3-63 chars of [a-z0-9-]); nothing is created."""
    prefix = "".join(c for c in name_prefix.lower() if c.isascii() and (c.isalnum() or c == "-"))
    return f"{prefix.strip('-')[:40] or 'b'}-{uuid.uuid4().hex[:16]}"


@pytest.fixture
def bucket(oss_server: OssServer, request: pytest.FixtureRequest) -> str:
    """A new, empty bucket (created through the official SDK) for this test alone."""
    name = make_bucket(request.node.name)
    oss_server.sdk_client().put_bucket(oss.PutBucketRequest(bucket=name))
    return name


def python_child(script: str, *, stdin: bool = False) -> subprocess.Popen[str]:
    """`script` in a new interpreter (text pipes; stdin piped when asked), with faulthandler on
    so that a hung child can be made to print its stacks (see `interrupt`)."""
    return subprocess.Popen(
        [sys.executable, "-X", "faulthandler", "-c", script],
        stdin=subprocess.PIPE if stdin else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def interrupt(proc: subprocess.Popen[str], what: str, timeout: float = 10) -> tuple[str, str]:
    """Ctrl-C (SIGINT) to `proc`, then its stdout and stderr. A child still running after
    `timeout` seconds gets SIGABRT and the test fails with every thread's stack."""
    proc.send_signal(signal.SIGINT)
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        _, err = proc.communicate()
        pytest.fail(f"Ctrl-C did not interrupt {what}; its stacks:\n{err[-4000:]}")


@dataclass
class Store:
    """One bucket on either server, for tests that run over both protocols: `oss://` on the OSS
    test server (fixtures written with the official SDK) or `s3://` on s3s-fs (written with
    minio)."""

    scheme: str  # "oss" or "s3"
    endpoint: str
    region: str
    bucket: str
    put: Any  # (key, bytes) -> None, through the independent client
    write_cred_file: Any  # (path) -> Path: a credentials JSON our client reads
    region_env: dict[str, str]  # what a user of an IP endpoint sets for the region

    def uri(self, key: str = "") -> str:
        return f"{self.scheme}://{self.bucket}/{key}"


@pytest.fixture(params=["oss", "s3"])
def store(request: pytest.FixtureRequest) -> Store:
    """A fresh bucket reached over `oss://` or `s3://` (the test runs once with each)."""
    if request.param == "oss":
        server: OssServer = request.getfixturevalue("oss_server")
        bucket = request.getfixturevalue("bucket")
        return Store(
            "oss",
            server.endpoint,
            server.region,
            bucket,
            lambda key, data: server.put(bucket, key, data),
            server.write_cred_file,
            {"OSS_REGION": server.region},
        )
    s3: S3Server = request.getfixturevalue("s3_server")
    s3_bucket = request.getfixturevalue("s3_bucket")
    minio = s3.client()

    def put(key: str, data: bytes) -> None:
        minio.put_object(s3_bucket, key, io.BytesIO(data), len(data))

    def write_cred_file(path: str | os.PathLike[str]) -> Path:
        keys = {"AccessKeyId": s3.access_key, "AccessKeySecret": s3.secret_key}
        Path(path).write_text(json.dumps(keys))
        return Path(path)

    return Store("s3", s3.endpoint, s3.region, s3_bucket, put, write_cred_file, {})
