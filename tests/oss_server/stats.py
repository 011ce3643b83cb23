"""Request counters served by `GET /_control/stats` (reliability and benchmark checks).

Besides the totals, every data request is counted under its method, its OSS operation
(operations.py) and the sub-resources it carries, so a test can tell how many parts an upload
sent, or that a small body went up as one PutObject:

    "operations": {"UploadPart": {"requests": 4, "bytes_received": 307200,
                                  "responses_by_status": {"200": 3, "503": 1}}, ...}
    "requests_by_subresource": {"uploads": 2, "partNumber": 4, "uploadId": 5, "copy": 1}
    "bytes_received_by_method": {"PUT": 307200, "POST": 310, ...}

`bytes_received` counts request body bytes the server read (drained bodies of error answers
included), whatever the operation did with them.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field

# Enough for a few thousand requests with their retries; older points are dropped first.
TIMELINE_POINTS = 20_000


@dataclass(frozen=True)
class Classified:
    """What a finished request is counted under."""

    method: str
    operation: str
    subresources: tuple[str, ...] = ()


@dataclass
class _OperationCounts:
    requests: int = 0
    bytes_received: int = 0
    by_status: Counter[int] = field(default_factory=Counter)


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight = 0
        self._connections_open = 0
        self._reset_locked()

    def _reset_locked(self) -> None:
        self._by_method: Counter[str] = Counter()
        self._by_status: Counter[int] = Counter()
        self._by_code: Counter[str] = Counter()
        self._faults: Counter[str] = Counter()
        self._operations: dict[str, _OperationCounts] = {}
        self._by_subresource: Counter[str] = Counter()
        self._received_by_method: Counter[str] = Counter()
        self._requests = 0
        self._max_in_flight = 0
        self._bytes_sent = 0
        self._bytes_received = 0
        self._connections_total = 0
        self._control_requests = 0
        # time.monotonic() of the last reset: the zero of `elapsed` and of the timeline.
        self._t0 = time.monotonic()
        self._timeline: deque[tuple[float, int]] = deque(maxlen=TIMELINE_POINTS)
        self._timeline_dropped = 0
        # Start from the current level, so a reset mid-run does not look like an idle server.
        self._timeline.append((0.0, self._in_flight))

    def _record_in_flight_locked(self) -> None:
        if len(self._timeline) == TIMELINE_POINTS:
            self._timeline_dropped += 1
        self._timeline.append((time.monotonic() - self._t0, self._in_flight))

    def elapsed(self, at: float | None = None) -> float:
        """Seconds from the last reset to `at` (a time.monotonic() value; default now)."""
        with self._lock:
            return (time.monotonic() if at is None else at) - self._t0

    def connection_opened(self) -> None:
        with self._lock:
            self._connections_total += 1
            self._connections_open += 1

    def connection_closed(self) -> None:
        with self._lock:
            self._connections_open -= 1

    def control_request(self) -> None:
        with self._lock:
            self._control_requests += 1

    def fault_injected(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] += 1

    def begin(self, method: str) -> None:
        with self._lock:
            self._requests += 1
            self._by_method[method] += 1
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            self._record_in_flight_locked()

    def end(self, status: int, code: str | None, sent: int, received: int, req: Classified) -> None:
        with self._lock:
            self._in_flight -= 1
            self._record_in_flight_locked()
            self._by_status[status] += 1
            if code:
                self._by_code[code] += 1
            self._bytes_sent += sent
            self._bytes_received += received
            op = self._operations.setdefault(req.operation, _OperationCounts())
            op.requests += 1
            op.bytes_received += received
            op.by_status[status] += 1
            self._by_subresource.update(req.subresources)
            self._received_by_method[req.method] += received

    def reset(self) -> None:
        """Zero the counters; what is in flight now stays counted (and sets the new maximum)."""
        with self._lock:
            self._reset_locked()
            self._max_in_flight = self._in_flight

    def snapshot(self, timeline: bool = True) -> dict[str, object]:
        with self._lock:
            out: dict[str, object] = {
                "requests": self._requests,
                "requests_by_method": dict(self._by_method),
                "responses_by_status": {str(k): v for k, v in self._by_status.items()},
                "errors_by_code": dict(self._by_code),
                "faults_by_kind": dict(self._faults),
                "operations": {
                    name: {
                        "requests": op.requests,
                        "bytes_received": op.bytes_received,
                        "responses_by_status": {str(k): v for k, v in op.by_status.items()},
                    }
                    for name, op in self._operations.items()
                },
                "requests_by_subresource": dict(self._by_subresource),
                "bytes_received_by_method": dict(self._received_by_method),
                "in_flight": self._in_flight,
                "max_in_flight": self._max_in_flight,
                "bytes_sent": self._bytes_sent,
                "bytes_received": self._bytes_received,
                "connections_open": self._connections_open,
                "connections_total": self._connections_total,
                "control_requests": self._control_requests,
                "elapsed_s": time.monotonic() - self._t0,
                "timeline_dropped": self._timeline_dropped,
            }
            if timeline:
                out["in_flight_timeline"] = [[round(t, 6), n] for t, n in self._timeline]
            return out
