"""The OSS test server's fault injection (tests/oss_server/faults.py), observed from the wire.

Requests are signed by the official SDK's SignerV4 and sent over raw sockets, so each fault is
seen exactly as a client sees it: an error document, a reset, an early end of the body, a late
first byte, a damaged byte. The module runs its own server, so a plan can never leak into tests
that share the session server.
"""

from __future__ import annotations

import datetime
import email.utils
import http.client
import socket
import threading
import time
import urllib.error
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import alibabacloud_oss_v2 as oss  # type: ignore[import-untyped]
import pytest
from alibabacloud_oss_v2.signer.v4 import SignerV4  # type: ignore[import-untyped]
from alibabacloud_oss_v2.types import (  # type: ignore[import-untyped]
    Credentials,
    HttpRequest,
    SigningContext,
)

from conftest import REGION, OssServer, start_oss_server, stop_oss_server
from oss_server import crc64, generated_bytes
from oss_server.faults import FaultPlan
from oss_server.server import OssHTTPServer, ServerConfig
from oss_server.signature import AccessKey

pytestmark = pytest.mark.oss_server

BUCKET = "faults"
SIZE = 64 * 1024
SEED = 11
DATA = generated_bytes(SEED, 0, SIZE)
KEYS = ("data/a", "data/b", "other/c")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OssServer]:
    srv = start_oss_server(tmp_path_factory.mktemp("faults") / "root")
    try:
        srv.sdk_client().put_bucket(oss.PutBucketRequest(bucket=BUCKET))
        for key in KEYS:
            srv.generate(BUCKET, key, SIZE, seed=SEED)
        yield srv
    finally:
        stop_oss_server(srv)


@pytest.fixture(autouse=True)
def fresh(server: OssServer) -> Iterator[None]:
    server.clear_faults()
    server.reset_stats()
    yield
    server.clear_faults()
    server.control("POST", "clock", {"offset_s": 0})


# -- a raw, SDK-signed client ---------------------------------------------------------------


def signed_request(
    port: int,
    access_key_id: str,
    secret: str,
    method: str,
    bucket: str,
    key: str | None = None,
    query: str = "",
    signing_time: datetime.datetime | None = None,
) -> bytes:
    """The bytes of one request signed by the official SDK (query given strictly encoded)."""
    host = f"127.0.0.1:{port}"
    path = f"/{bucket}/" + (quote(key) if key is not None else "")
    target = path + (f"?{query}" if query else "")
    req = HttpRequest(method, f"http://{host}{target}", headers={"Host": host})
    ctx = SigningContext(
        product="oss",
        region=REGION,
        bucket=bucket,
        key=key,
        request=req,
        credentials=Credentials(access_key_id, secret, None),
        signing_time=signing_time,
    )
    SignerV4().sign(ctx)
    lines = [f"{method} {target} HTTP/1.1", *(f"{k}: {v}" for k, v in req.headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


@dataclass
class Exchange:
    """One request's answer as it arrived."""

    status: int  # 0: the connection ended before a status line
    headers: dict[str, str]  # lower-case names
    body: bytes
    ending: str  # "complete", "eof" (FIN before the end) or "reset" (ECONNRESET)
    first_byte_s: float

    @property
    def content_length(self) -> int:
        return int(self.headers["content-length"])

    def error_code(self) -> str:
        root = ET.fromstring(self.body)
        assert root.tag == "Error", self.body
        return root.findtext("Code") or ""


def read_answer(sock: socket.socket, method: str, started: float) -> Exchange:
    buf = b""
    first_byte_s = -1.0
    status, headers, body_start, expected = 0, {}, -1, -1
    ending = "complete"
    while True:
        if body_start >= 0 and len(buf) - body_start >= expected:
            break
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            ending = "reset"
            break
        if not chunk:
            ending = "eof"
            break
        if first_byte_s < 0:
            first_byte_s = time.monotonic() - started
        buf += chunk
        if body_start < 0 and b"\r\n\r\n" in buf:
            head, _, _ = buf.partition(b"\r\n\r\n")
            body_start = len(head) + 4
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            status = int(status_line.split()[1])
            for line in header_lines:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            expected = 0 if method == "HEAD" else int(headers["content-length"])
    body = buf[body_start:] if body_start >= 0 else b""
    return Exchange(status, headers, body, ending, first_byte_s)


def exchange(
    server: OssServer,
    method: str,
    key: str | None = None,
    *,
    query: str = "",
    secret: str | None = None,
    timeout: float = 10.0,
    sock: socket.socket | None = None,
) -> Exchange:
    """Send one signed request (on `sock` if given, else a new connection) and read the answer."""
    data = signed_request(
        server.port,
        server.access_key_id,
        secret or server.access_key_secret,
        method,
        BUCKET,
        key,
        query,
    )
    own = sock is None
    conn = sock or socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    try:
        started = time.monotonic()
        conn.sendall(data)
        return read_answer(conn, method, started)
    finally:
        if own:
            conn.close()


def http_client_response(server: OssServer, key: str) -> http.client.HTTPResponse:
    """The headers of a signed GET, read by http.client, with the body still to come."""
    data = signed_request(
        server.port, server.access_key_id, server.access_key_secret, "GET", BUCKET, key
    )
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(data)
    resp = http.client.HTTPResponse(sock, method="GET")
    sock.close()  # the response's own file keeps the connection open until it is closed
    resp.begin()
    return resp


def outcome(ex: Exchange) -> str:
    """Which fault, if any, a GET of DATA met, judged only from what arrived."""
    if ex.ending == "reset":
        return "reset"
    if ex.ending == "eof":
        return "truncate"
    if ex.status != 200:
        return str(ex.status)
    return "none" if ex.body == DATA else "corrupt"


def stats(server: OssServer) -> dict[str, Any]:
    return server.settled_stats(5)


# -- the control API ------------------------------------------------------------------------


def test_plan_round_trip_and_clear(server: OssServer) -> None:
    set_result = server.set_faults(seed=5, scope="list", p_503=0.25, burst={"count": 2})
    assert server.faults() == set_result
    plan = set_result["plan"]
    assert plan["seed"] == 5 and plan["scope"] == ["list"] and plan["p_503"] == 0.25
    assert plan["burst"] == {
        "status": 503,
        "code": "ServiceUnavailable",
        "count": 2,
        "window_s": None,
        "start_after": 0,
    }
    assert set_result["state"]["faultable_requests"] == 0
    cleared = server.clear_faults()["plan"]
    assert cleared["p_503"] == 0 and cleared["burst"] is None


@pytest.mark.parametrize(
    ("plan", "complaint"),
    [
        ({"p503": 0.5}, "unknown fault plan fields"),
        ({"p_503": 0.6, "p_reset": 0.5}, "more than 1"),
        ({"p_500": 1.5}, "between 0 and 1"),
        ({"p_stall": 0.1}, "needs stall_s"),
        ({"scope": "everything"}, "scope"),
        ({"scope": 3}, "scope"),
        ({"burst": {"status": 503}}, "count, window_s"),
        ({"burst": {"count": 1, "status": 404}}, "burst status"),
    ],
)
def test_bad_plans_are_refused(server: OssServer, plan: dict[str, Any], complaint: str) -> None:
    server.set_faults(p_503=0.5)
    with pytest.raises(urllib.error.HTTPError) as info:
        server.set_faults(**plan)
    assert info.value.code == 400
    assert complaint in info.value.read().decode()
    assert server.faults()["plan"]["p_503"] == 0.5, "a refused plan leaves the old one"


# -- each kind of fault ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "status", "code"),
    [("p_503", 503, "ServiceUnavailable"), ("p_500", 500, "InternalError"),
     ("p_429", 429, "QpsLimitExceeded")],
)  # fmt: skip
def test_error_answers_are_oss_errors(
    server: OssServer, field: str, status: int, code: str
) -> None:
    server.set_faults(**{field: 1.0})
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        ex = exchange(server, "GET", "data/a", sock=sock)
        assert (ex.status, ex.error_code(), ex.ending) == (status, code, "complete")
        root = ET.fromstring(ex.body)
        assert root.findtext("RequestId") == ex.headers["x-oss-request-id"]
        assert root.findtext("EC") == ex.headers["x-oss-ec"]
        assert ex.headers["content-type"] == "application/xml"
        # An error answer keeps the connection, as on OSS: the next request on it works.
        server.clear_faults()
        again = exchange(server, "GET", "data/a", sock=sock)
    assert (again.status, again.body) == (200, DATA)
    after = stats(server)
    assert after["faults_by_kind"] == {str(status): 1}
    assert after["errors_by_code"] == {code: 1}


def test_reset_mid_body(server: OssServer) -> None:
    server.set_faults(p_reset=1.0)
    ex = exchange(server, "GET", "data/a")
    assert ex.status == 200 and ex.content_length == SIZE
    assert ex.ending == "reset"
    assert len(ex.body) <= SIZE // 2
    assert DATA.startswith(ex.body)
    # What http.client (and so most Python clients) raises for it.
    resp = http_client_response(server, "data/b")
    assert resp.status == 200
    with pytest.raises(ConnectionResetError):
        resp.read()
    resp.close()
    assert stats(server)["faults_by_kind"] == {"reset": 2}


def test_truncated_body_ends_with_fin(server: OssServer) -> None:
    server.set_faults(p_truncate=1.0)
    ex = exchange(server, "GET", "data/a")
    assert ex.status == 200 and ex.content_length == SIZE
    assert ex.ending == "eof"
    assert ex.body == DATA[: SIZE // 2]
    resp = http_client_response(server, "data/b")
    assert resp.status == 200
    with pytest.raises(http.client.IncompleteRead) as info:
        resp.read()
    resp.close()
    assert len(info.value.partial) == SIZE // 2
    assert info.value.expected == SIZE - SIZE // 2
    assert stats(server)["faults_by_kind"] == {"truncate": 2}


def test_ranged_reads_are_faulted_too(server: OssServer) -> None:
    """A client resuming a cut body with a Range meets the same faults on the retry."""
    server.set_faults(p_truncate=1.0)
    data = signed_request(
        server.port, server.access_key_id, server.access_key_secret, "GET", BUCKET, "data/a"
    )
    ranged = data.replace(b"\r\n\r\n", b"\r\nRange: bytes=1000-2999\r\n\r\n", 1)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(ranged)
        ex = read_answer(sock, "GET", time.monotonic())
    assert (ex.status, ex.ending, ex.body) == (206, "eof", DATA[1000:2000])


def test_corrupt_body_fails_the_crc(server: OssServer) -> None:
    server.set_faults(p_corrupt=1.0)
    ex = exchange(server, "GET", "data/a")
    assert (ex.status, ex.ending, len(ex.body)) == (200, "complete", SIZE)
    assert int(ex.headers["x-oss-hash-crc64ecma"]) == crc64(DATA)
    assert crc64(ex.body) != crc64(DATA)
    assert [i for i in range(SIZE) if ex.body[i] != DATA[i]] == [SIZE // 2]
    assert stats(server)["faults_by_kind"] == {"corrupt": 1}


def test_short_stall_delays_the_first_byte(server: OssServer) -> None:
    server.set_faults(p_stall=1.0, stall_s=0.5)
    ex = exchange(server, "GET", "data/a")
    assert (ex.status, ex.body) == (200, DATA)
    assert 0.45 <= ex.first_byte_s < 2.0
    server.clear_faults()
    assert exchange(server, "GET", "data/a").first_byte_s < 0.3
    assert stats(server)["faults_by_kind"] == {"stall": 1}


def test_endless_stall_times_out_and_frees_the_server(server: OssServer) -> None:
    server.set_faults(p_stall=1.0, stall_s=-1)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        exchange(server, "GET", "data/a", timeout=0.5)
    assert time.monotonic() - started < 2.0
    # The handler notices the client left: nothing stays in flight.
    deadline = time.monotonic() + 3.0
    while (now := stats(server))["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert now["in_flight"] == 0
    assert now["responses_by_status"] == {"499": 1}


def test_endless_stall_ends_when_the_server_closes(tmp_path: Path) -> None:
    """Stalled answers must not outlive the server (in-process, where threads would linger)."""
    key = AccessKey("AKinproc", "in-process-secret")
    srv = OssHTTPServer(ServerConfig(root=tmp_path / "root", region=REGION, keys=[key]))
    srv.state.store.create_bucket(BUCKET)
    srv.state.store.generate(BUCKET, "k", 100, 0)
    srv.state.faults.set_plan(FaultPlan.from_json({"p_stall": 1.0, "stall_s": -1}))
    serving = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    serving.start()
    port = int(srv.server_address[1])
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(signed_request(port, key.id, key.secret, "GET", BUCKET, "k"))
            time.sleep(0.3)
            assert srv.state.stats.snapshot(timeline=False)["in_flight"] == 1
            srv.shutdown()
            srv.server_close()
            closed_at = time.monotonic()
            assert read_answer(sock, "GET", closed_at).ending == "eof"
            assert time.monotonic() - closed_at < 2.0
    finally:
        srv.shutdown()
        srv.server_close()
        serving.join(5)


def test_bodyless_answers_are_cut_before_the_status_line(server: OssServer) -> None:
    server.set_faults(scope="head", p_truncate=1.0)
    ex = exchange(server, "HEAD", "data/a")
    assert (ex.status, ex.ending) == (0, "eof")
    server.set_faults(scope="head", p_reset=1.0)
    assert exchange(server, "HEAD", "data/a").ending == "reset"
    assert exchange(server, "GET", "data/a").body == DATA, "scope head leaves GETs alone"


# -- bursts, scope, determinism -------------------------------------------------------------


def test_burst_of_n_then_normal(server: OssServer) -> None:
    server.set_faults(burst={"count": 3, "status": 429, "start_after": 1})
    statuses = [exchange(server, "GET", "data/a").status for _ in range(6)]
    assert statuses == [200, 429, 429, 429, 200, 200]
    state = server.faults()["state"]
    assert state["burst_errors_sent"] == 3 and not state["burst_active"]
    assert 0 <= state["burst_started_s"] <= state["burst_ended_s"]


def test_burst_with_custom_code_through_the_sdk(server: OssServer) -> None:
    """The official SDK parses the error and retries it: 2 failures pass in its 3 attempts,
    3 do not."""
    server.set_faults(burst={"count": 2, "status": 503, "code": "TotalQpsLimitExceeded"})
    got = server.sdk_client().get_object(oss.GetObjectRequest(bucket=BUCKET, key="data/a"))
    assert got.body.read() == DATA
    server.set_faults(burst={"count": 3, "status": 503, "code": "TotalQpsLimitExceeded"})
    with pytest.raises(oss.exceptions.OperationError) as info:
        server.sdk_client().get_object(oss.GetObjectRequest(bucket=BUCKET, key="data/a"))
    err = info.value.unwrap()
    assert (err.status_code, err.code) == (503, "TotalQpsLimitExceeded")
    assert stats(server)["errors_by_code"] == {"TotalQpsLimitExceeded": 5}


def test_burst_window(server: OssServer) -> None:
    server.set_faults(burst={"window_s": 0.4})
    first = time.monotonic()
    seen: list[tuple[float, int]] = []
    while time.monotonic() - first < 0.8:
        seen.append((time.monotonic() - first, exchange(server, "GET", "data/a").status))
    failing = [t for t, status in seen if status == 503]
    passing = [t for t, status in seen if status == 200]
    assert failing and passing and len(failing) + len(passing) == len(seen)
    assert max(failing) < min(passing), "one window, then normal service"
    assert 0.35 <= min(passing) <= 0.6
    state = server.faults()["state"]
    assert state["burst_ended_s"] - state["burst_started_s"] == pytest.approx(0.4)


def test_scope_and_prefix(server: OssServer) -> None:
    server.set_faults(p_503=1.0, keys_prefix="data/")
    assert exchange(server, "GET", "data/a").status == 503
    assert exchange(server, "GET", "other/c").status == 200
    listing = exchange(server, "GET", None, query="list-type=2&prefix=data%2F")
    assert listing.status == 200, "scope get leaves listings alone"
    server.set_faults(p_503=1.0, scope="list")
    assert exchange(server, "GET", None, query="list-type=2").status == 503
    assert exchange(server, "GET", "data/a").status == 200
    server.set_faults(p_503=1.0, scope="all", bucket="another-bucket")
    assert exchange(server, "GET", "data/a").status == 200


def test_auth_refusals_are_never_masked(server: OssServer) -> None:
    server.set_faults(p_503=1.0, burst={"count": 5})
    ex = exchange(server, "GET", "data/a", secret="not-the-secret")
    assert (ex.status, ex.error_code()) == (403, "SignatureDoesNotMatch")
    assert server.faults()["state"]["faultable_requests"] == 0, "a refused request draws nothing"


def test_same_seed_same_decisions(server: OssServer) -> None:
    plan: dict[str, Any] = {
        "seed": 42,
        "p_503": 0.15,
        "p_500": 0.1,
        "p_429": 0.1,
        "p_reset": 0.1,
        "p_truncate": 0.1,
        "p_corrupt": 0.1,
    }

    def run(**overrides: Any) -> list[str]:
        server.set_faults(**{**plan, **overrides})
        server.reset_stats()
        seen = [outcome(exchange(server, "GET", "data/a")) for _ in range(60)]
        counted = stats(server)["faults_by_kind"]
        assert counted == {k: n for k, n in Counter(seen).items() if k != "none"}
        return seen

    first = run()
    assert set(first) == {"none", "503", "500", "429", "reset", "truncate", "corrupt"}
    assert run() == first
    assert run(seed=43) != first


def test_independent_draws_match_the_probabilities(server: OssServer) -> None:
    """400 concurrent attempts: the fault counts follow the plan (about 20 % / 5 % / 5 %)."""
    server.set_faults(seed=3, p_503=0.2, p_reset=0.05, p_truncate=0.05)
    seen: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(50):
            try:
                got = outcome(exchange(server, "GET", "data/b"))
            except Exception as e:  # counted as an outcome, so the total below catches it
                got = repr(e)
            with lock:
                seen.append(got)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts = Counter(seen)
    assert sum(counts.values()) == 400
    assert 50 <= counts["503"] <= 110
    assert 8 <= counts["reset"] <= 35 and 8 <= counts["truncate"] <= 35
    assert counts["500"] == counts["429"] == counts["corrupt"] == 0
    assert stats(server)["faults_by_kind"] == {k: n for k, n in counts.items() if k != "none"}


# -- in-flight timeline ---------------------------------------------------------------------


def test_in_flight_timeline(server: OssServer) -> None:
    # Stalls keep requests overlapping long enough to be seen in flight together.
    server.set_faults(p_stall=1.0, stall_s=0.3)

    bad: list[str] = []  # a failed assert in a thread would go unnoticed

    def fetch(rounds: int) -> None:
        for _ in range(rounds):
            ex = exchange(server, "GET", "data/a")
            if ex.body != DATA:
                bad.append(f"{ex.status} {ex.ending} {len(ex.body)} bytes")

    def wave(workers: int, rounds: int) -> tuple[float, float]:
        # The server records a request's end after its last byte is sent, which can be after
        # the client has read it: wait for the previous wave to be over in its books too.
        deadline = time.monotonic() + 5
        while server.in_flight_timeline()[-1][1] != 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        start = stats(server)["elapsed_s"]
        threads = [threading.Thread(target=fetch, args=(rounds,)) for _ in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return start, stats(server)["elapsed_s"]

    wide = wave(8, 1)
    narrow = wave(2, 2)
    assert not bad, bad
    timeline = server.in_flight_timeline()
    assert len(timeline) == 1 + 2 * (8 + 4), "the start, then every begin and end"
    assert timeline[0] == (0.0, 0) and timeline[-1][1] == 0
    assert [t for t, _ in timeline] == sorted(t for t, _ in timeline)
    assert server.in_flight_between(timeline, *wide)["max"] == 8
    narrow_profile = server.in_flight_between(timeline, *narrow)
    # A request is booked as ended after its answer went out, so a worker's next request can
    # begin in the books just before its previous one ends: 2 in flight, 3 for an instant.
    assert narrow_profile["max"] in (2, 3)
    assert 1.0 <= narrow_profile["mean"] <= 2.0
    assert stats(server)["faults_by_kind"] == {"stall": 12}
    server.reset_stats()
    assert server.in_flight_timeline() == [(0.0, 0)]


def test_in_flight_between_weights_by_time() -> None:
    timeline = [(0.0, 0), (1.0, 4), (1.5, 0), (2.0, 1)]
    profile = OssServer.in_flight_between(timeline, 0.5, 2.5)
    assert profile == {"max": 4.0, "mean": pytest.approx((4 * 0.5 + 1 * 0.5) / 2.0)}
    assert OssServer.in_flight_between(timeline, 1.2, 1.4) == {"max": 4.0, "mean": 4.0}


# -- expired tokens and a skewed clock ------------------------------------------------------


def test_skewed_clock_is_learnable_from_date(server: OssServer) -> None:
    server.control("POST", "clock", {"offset_s": 3600})
    ex = exchange(server, "GET", "data/a")
    assert (ex.status, ex.error_code()) == (403, "RequestTimeTooSkewed")
    server_date = email.utils.parsedate_to_datetime(ex.headers["date"])
    offset = server_date - datetime.datetime.now(datetime.UTC)
    assert abs(offset.total_seconds() - 3600) < 5
    # A client that signs with the server's time, as learnt from Date, is let in.
    data = signed_request(
        server.port,
        server.access_key_id,
        server.access_key_secret,
        "GET",
        BUCKET,
        "data/a",
        signing_time=datetime.datetime.now(datetime.UTC) + offset,
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        corrected = read_answer(sock, "GET", time.monotonic())
    assert (corrected.status, corrected.body) == (200, DATA)


def test_expired_token_answer(server: OssServer) -> None:
    server.control_keys(add=[{"id": "STS.faults", "secret": "sts-secret"}])
    try:
        server.control_keys(expire=["STS.faults"])
        ex = exchange_as(server, "STS.faults", "sts-secret")
        assert (ex.status, ex.error_code()) == (403, "SecurityTokenExpired")
        assert ex.headers["x-oss-request-id"]
        # Expiry outranks faults, like any refusal; re-adding the key revives it.
        server.set_faults(p_503=1.0)
        assert exchange_as(server, "STS.faults", "sts-secret").error_code() == (
            "SecurityTokenExpired"
        )
        server.clear_faults()
        server.control_keys(add=[{"id": "STS.faults", "secret": "sts-secret"}])
        assert exchange_as(server, "STS.faults", "sts-secret").body == DATA
    finally:
        server.control_keys(remove=["STS.faults"])


def exchange_as(server: OssServer, access_key_id: str, secret: str) -> Exchange:
    data = signed_request(server.port, access_key_id, secret, "GET", BUCKET, "data/a")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        return read_answer(sock, "GET", time.monotonic())
