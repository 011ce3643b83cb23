"""A fault-injecting HTTP proxy in front of s3s-fs, which has no fault injection of its own.

Every request is forwarded unchanged (its `Host` header included, so the SigV4 signature the
client made for the proxy's address still verifies), then, by one seeded draw per request:
- `p_503`: answered `503 SlowDown` with S3's error XML instead, the request not forwarded;
- `p_reset`: forwarded, then the answer is cut by a TCP reset after its headers and half its
  body (or before anything, for an answer without a body);
- `p_stall`: forwarded, then nothing is sent for `stall_s` seconds before the answer;
- `p_corrupt`: forwarded, then one byte in the middle of the answer's body inverted (headers,
  checksums included, unchanged);
- `p_corrupt_upload`: one byte in the middle of the request's body inverted before it is
  forwarded (what a bad NIC or proxy on the way does; S3 refuses it when a checksum came along).
`only` limits the faults to requests whose `"METHOD path?query"` contains it (e.g.
`"POST /b/k?uploadId="`: CompleteMultipartUpload alone). A burst answers `503 SlowDown` to
`burst_count` requests in a row after the first `burst_after`; `delay_s` holds every answer
back (a store's latency, so that requests pile up in flight). `refuse_checksums` answers
`400 InvalidArgument` to every request carrying an `x-amz-checksum-*` CRC or algorithm, as a
store that predates CRC-64/NVME may.

Control: `FaultProxy.set_faults(...)`; counters in `FaultProxy.counts`; with `record=True`,
every request as it arrived in `FaultProxy.requests`; `FaultProxy.timeline`: `(seconds since
set_faults, requests in flight)` at every change. Listens on 127.0.0.1.
"""

from __future__ import annotations

import http.client
import http.server
import random
import socket
import struct
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message>"
    b"<RequestId>fault-proxy</RequestId></Error>"
)
INVALID_ARGUMENT = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InvalidArgument</Code>'
    b"<Message>Unsupported checksum algorithm</Message>"
    b"<RequestId>fault-proxy</RequestId></Error>"
)
EXPIRED_TOKEN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>ExpiredToken</Code>'
    b"<Message>The provided token has expired.</Message>"
    b"<RequestId>fault-proxy</RequestId></Error>"
)
# Hop-by-hop headers are the proxy's own business, not the upstream's.
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


@dataclass
class Plan:
    p_503: float = 0.0
    p_reset: float = 0.0
    p_stall: float = 0.0
    stall_s: float = 0.0
    p_corrupt: float = 0.0
    p_corrupt_upload: float = 0.0
    record: bool = False
    delay_s: float = 0.0
    burst_after: int = 0
    burst_count: int = 0
    refuse_checksums: bool = False
    expired_key: str = ""  # requests signed with this access key id get 400 ExpiredToken
    only: str = ""
    seed: int = 0
    rng: random.Random = field(default_factory=random.Random)


@dataclass
class Recorded:
    """A request as the proxy received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


def _flip_middle_byte(data: bytes) -> bytes:
    at = len(data) // 2
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _forward(self) -> None:
        proxy = self.server.proxy
        proxy.enter(1)
        try:
            self._answer(proxy)
        finally:
            proxy.enter(-1)

    def _answer(self, proxy: FaultProxy) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if proxy.plan.record:
            proxy.record(Recorded(self.command, self.path, dict(self.headers.items()), body))
        if proxy.plan.refuse_checksums and any(
            k.lower().startswith("x-amz-checksum-") and k.lower() != "x-amz-checksum-mode"
            for k in self.headers
        ):
            proxy.count("refused_checksum")
            self._error(400, INVALID_ARGUMENT)
            return
        expired = proxy.plan.expired_key
        if expired and f"Credential={expired}/" in self.headers.get("Authorization", ""):
            proxy.count("expired")
            self._error(400, EXPIRED_TOKEN)
            return
        fault = proxy.draw(f"{self.command} {self.path}")
        proxy.count(fault or "forwarded")
        if fault == "corrupt_upload" and body:
            body = _flip_middle_byte(body)
        if fault == "503":
            self._error(503, SLOW_DOWN)
            return
        upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
        try:
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in HOP:
                    upstream.putheader(name, value)
            upstream.endheaders(body or None)
            answer = upstream.getresponse()
            data = answer.read()
        finally:
            upstream.close()
        if fault == "stall":
            time.sleep(proxy.plan.stall_s)
        if proxy.plan.delay_s:
            time.sleep(proxy.plan.delay_s)
        self.send_response_only(answer.status, answer.reason)
        head = self.command == "HEAD"  # keeps the upstream's Content-Length: the object's size
        for name, value in answer.getheaders():
            if name.lower() not in HOP and (head or name.lower() != "content-length"):
                self.send_header(name, value)
        if not head:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if fault == "reset":
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            # SO_LINGER 0: close() sends a RST, not a FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        if fault == "corrupt" and data:
            data = _flip_middle_byte(data)
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward


class _ProxyServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    proxy: FaultProxy

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up on a stalled answer has closed its end: nothing to report.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class FaultProxy:
    """The proxy, serving on `endpoint` until `stop()`."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.plan = Plan()
        self.counts: Counter[str] = Counter()
        self.requests: list[Recorded] = []
        self.timeline: list[tuple[float, int]] = []
        self.burst: list[float] = []  # when the burst's first and last 503 were answered
        self._in_flight = 0
        self._seen = 0
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._server = _ProxyServer(("127.0.0.1", 0), _Handler)
        self._server.proxy = self
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def set_faults(self, **plan: Any) -> None:
        with self._lock:
            self.plan = Plan(**plan)
            self.plan.rng.seed(self.plan.seed)
            self.counts = Counter()
            self.requests = []
            self.timeline = []
            self.burst = []
            self._seen = 0
            self._started = time.monotonic()

    def draw(self, request: str) -> str | None:
        with self._lock:
            if self.plan.only not in request:
                return None
            self._seen += 1
            p = self.plan
            if p.burst_after < self._seen <= p.burst_after + p.burst_count:
                self.burst.append(time.monotonic() - self._started)
                return "503"
            u = p.rng.random()
            for name, threshold in (
                ("503", p.p_503),
                ("reset", p.p_reset),
                ("stall", p.p_stall),
                ("corrupt", p.p_corrupt),
                ("corrupt_upload", p.p_corrupt_upload),
            ):
                if u < threshold:
                    return name
                u -= threshold
            return None

    def enter(self, change: int) -> None:
        with self._lock:
            self._in_flight += change
            self.timeline.append((time.monotonic() - self._started, self._in_flight))

    def in_flight_between(self, start: float, end: float) -> dict[str, float]:
        """Requests in flight from `start` to `end` (seconds): max, and mean over time."""
        with self._lock:
            timeline = list(self.timeline)
        area, peak = 0.0, 0
        for (t0, level), (t1, _) in zip(timeline, [*timeline[1:], (end, 0)], strict=True):
            lo, hi = max(t0, start), min(t1, end)
            if hi > lo:
                area += level * (hi - lo)
                peak = max(peak, level)
        return {"max": peak, "mean": area / max(end - start, 1e-9)}

    def record(self, request: Recorded) -> None:
        with self._lock:
            self.requests.append(request)

    def count(self, what: str) -> None:
        with self._lock:
            self.counts[what] += 1

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
