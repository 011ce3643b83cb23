"""Per-request fault hook.

Every data request (not `/_control/`) asks the server's `FaultInjector` for a `Fault` before it
is answered. Today the injector only adds the configured first-byte delay; reliability tests
will subclass or replace it (503 bursts, resets mid-body, truncated bodies) without touching the
handler's protocol code: the handler applies whatever the returned `Fault` says.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from .errors import OssError


@dataclass(frozen=True)
class RequestInfo:
    """What an injector may decide on."""

    seq: int  # 1-based number of the data request since start-up
    method: str
    bucket: str | None
    key: str | None
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names


@dataclass(frozen=True)
class Fault:
    # Sleep before the status line: models OSS's first-byte latency.
    first_byte_delay_s: float = 0.0
    # Answer this error instead of the operation; applied after the signature check so that
    # auth refusals are never masked.
    error: OssError | None = None


NO_FAULT = Fault()


class FaultInjector:
    def __init__(self, first_byte_delay_s: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._seq = 0
        self.first_byte_delay_s = first_byte_delay_s

    def next_seq(self) -> int:
        with self._lock:
            self._seq += 1
            return self._seq

    def decide(self, info: RequestInfo) -> Fault:
        if self.first_byte_delay_s > 0:
            return Fault(first_byte_delay_s=self.first_byte_delay_s)
        return NO_FAULT
