"""Request counters served by `GET /_control/stats` (reliability and benchmark checks)."""

from __future__ import annotations

import threading
from collections import Counter


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset_locked()
        self._in_flight = 0
        self._connections_open = 0

    def _reset_locked(self) -> None:
        self._by_method: Counter[str] = Counter()
        self._by_status: Counter[int] = Counter()
        self._by_code: Counter[str] = Counter()
        self._requests = 0
        self._max_in_flight = 0
        self._bytes_sent = 0
        self._bytes_received = 0
        self._connections_total = 0
        self._control_requests = 0

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

    def begin(self, method: str) -> None:
        with self._lock:
            self._requests += 1
            self._by_method[method] += 1
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def end(self, status: int, code: str | None, sent: int, received: int) -> None:
        with self._lock:
            self._in_flight -= 1
            self._by_status[status] += 1
            if code:
                self._by_code[code] += 1
            self._bytes_sent += sent
            self._bytes_received += received

    def reset(self) -> None:
        """Zero the counters; what is in flight now stays counted (and sets the new maximum)."""
        with self._lock:
            self._reset_locked()
            self._max_in_flight = self._in_flight

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            return {
                "requests": self._requests,
                "requests_by_method": dict(self._by_method),
                "responses_by_status": {str(k): v for k, v in self._by_status.items()},
                "errors_by_code": dict(self._by_code),
                "in_flight": self._in_flight,
                "max_in_flight": self._max_in_flight,
                "bytes_sent": self._bytes_sent,
                "bytes_received": self._bytes_received,
                "connections_open": self._connections_open,
                "connections_total": self._connections_total,
                "control_requests": self._control_requests,
            }
