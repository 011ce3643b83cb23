"""Deterministic, seeded fault injection.

Every data request (never `/_control/`) whose signature verified asks the server's
`FaultInjector` for a `Fault`; the handler applies whatever the `Fault` says and holds no fault
logic of its own. Requests refused by the signature check are never faulted: a fault must not
mask an auth refusal.

The plan (`POST /_control/faults`, JSON; every field optional, `{}` clears):

    seed          int, default 0: seeds one `random.Random`
    scope         which requests may be faulted: a group or an operation name, or a list of
                  them. Groups: "get" (GetObject, the default) | "head" (HeadObject) | "list"
                  (ListObjects v1/v2) | "put" (PutObject, UploadPart, CopyObject) | "post"
                  (InitiateMultipartUpload, CompleteMultipartUpload) | "delete" (DeleteObject,
                  AbortMultipartUpload) | "all" (every data request). Operation names (see
                  operations.py): "PutObject", "UploadPart", "CompleteMultipartUpload",
                  "ListMultipartUploads", ... select that operation alone.
    methods       only requests with one of these HTTP methods, e.g. ["PUT"] or ["PUT",
                  "POST"]. Without an explicit `scope`, `methods` alone selects (the scope
                  becomes "all"); with both, a request must match both.
    bucket        only requests to this bucket
    keys_prefix   only object keys under this prefix (bucket requests: a `prefix` under it)
    p_503         503 ServiceUnavailable (a request body is read first, so the connection
                  stays usable)
    p_500         500 InternalError
    p_429         429 QpsLimitExceeded (what OSS answers with status 429; its 503 throttling
                  codes, e.g. TotalQpsLimitExceeded, are available through `burst.code`)
    p_reset       the operation is performed, then its answer is cut by a TCP reset: after the
                  status line, headers and half the body, or before the status line when the
                  answer has no body (PutObject, UploadPart, HEAD, 204s)
    p_truncate    as p_reset, with a FIN instead of a reset
    p_stall       the operation is performed, then no answer for `stall_s` seconds (required
                  with p_stall; -1 = never answer)
    p_corrupt     one body byte inverted (headers, CRC included, unchanged); nothing for
                  answers without a body
    p_reset_mid_request   TCP reset while the client is still sending its request body (after
                  half of it, at most 1 MiB); the operation is not performed
    p_reset_after_request TCP reset once the whole request body is read, before anything is
                  performed or answered
    burst         {"status": 503|500|429 (default 503), "code": str (default by status),
                   "count": N, "window_s": T, "start_after": K (default 0)}: after K faultable
                  requests, every faultable request gets that error until N of them have, or
                  until T seconds after the first one (whichever ends first; at least one of
                  count and window_s is required). Then the probabilities apply again.

The probabilities sum to at most 1. Each faultable request (an "attempt") is decided
independently by exactly one draw `u = rng.random()`, taken even during a burst, against
cumulative thresholds in the order 503, 500, 429, reset, truncate, stall, corrupt,
reset_mid_request, reset_after_request. So the same seed and the same sequence of faultable
requests give the same decisions; replacing the plan re-seeds the generator.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from . import operations
from .errors import OssError


@dataclass(frozen=True)
class RequestInfo:
    """What an injector may decide on."""

    seq: int  # 1-based number of the data request since start-up
    method: str
    operation: str  # see operations.py
    bucket: str | None
    key: str | None
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names


class BodyFault(Enum):
    RESET = "reset"
    TRUNCATE = "truncate"
    CORRUPT = "corrupt"


class RequestFault(Enum):
    """Faults that hit while the request is still arriving: nothing is performed."""

    RESET_MID_REQUEST = "reset_mid_request"
    RESET_AFTER_REQUEST = "reset_after_request"


@dataclass(frozen=True)
class Fault:
    # Wait before the status line: OSS's first-byte latency, or a stall (math.inf: never
    # answer; the wait ends early when the client disconnects or the server stops).
    first_byte_delay_s: float = 0.0
    # Answer this error instead of the operation.
    error: OssError | None = None
    # Damage the body of whatever answer the operation produces. With no body to damage (HEAD,
    # empty object, 204), RESET and TRUNCATE act before the status line and CORRUPT does
    # nothing.
    body: BodyFault | None = None
    # Cut the connection before the operation runs (see RequestFault).
    request: RequestFault | None = None
    # The name `faults_by_kind` counts this under once the handler applies it; None for plain
    # latency.
    kind: str | None = None


NO_FAULT = Fault()

SCOPES = (*operations.GROUPS, *operations.ALL)
# New kinds go last: the draw thresholds of plans written before them stay the same.
KINDS = (
    "503",
    "500",
    "429",
    "reset",
    "truncate",
    "stall",
    "corrupt",
    "reset_mid_request",
    "reset_after_request",
)

# Messages as OSS words them, so clients that log them look realistic.
_MESSAGES = {
    "ServiceUnavailable": "Please reduce your request rate.",
    "InternalError": "We encountered an internal error. Please try again.",
    "QpsLimitExceeded": "Please reduce your request rate.",
    "TotalQpsLimitExceeded": "Max total qps limit is exceeded.",
    "DownloadTrafficRateLimitExceeded": "Please reduce your download request traffic.",
    "SlowDown": "Please reduce your request rate.",
}
_DEFAULT_CODE = {503: "ServiceUnavailable", 500: "InternalError", 429: "QpsLimitExceeded"}


def error_for(status: int, code: str | None = None) -> OssError:
    code = code or _DEFAULT_CODE.get(status, "InternalError")
    return OssError(status, code, _MESSAGES.get(code, "The request failed; please retry."))


class PlanError(ValueError):
    """A fault plan that cannot be applied; the message says why."""


@dataclass(frozen=True)
class Burst:
    status: int = 503
    code: str = "ServiceUnavailable"
    count: int | None = None
    window_s: float | None = None
    start_after: int = 0


@dataclass(frozen=True)
class FaultPlan:
    seed: int = 0
    scope: tuple[str, ...] = ("get",)
    methods: tuple[str, ...] | None = None
    bucket: str | None = None
    keys_prefix: str = ""
    p_503: float = 0.0
    p_500: float = 0.0
    p_429: float = 0.0
    p_reset: float = 0.0
    p_truncate: float = 0.0
    p_stall: float = 0.0
    p_corrupt: float = 0.0
    p_reset_mid_request: float = 0.0
    p_reset_after_request: float = 0.0
    stall_s: float | None = None
    burst: Burst | None = None
    # (kind, cumulative upper bound) in draw order, derived from the probabilities.
    thresholds: tuple[tuple[str, float], ...] = field(default=(), repr=False, compare=False)

    @property
    def empty(self) -> bool:
        return self.burst is None and not self.thresholds

    def matches(self, info: RequestInfo) -> bool:
        if self.bucket is not None and info.bucket != self.bucket:
            return False
        if self.methods is not None and info.method not in self.methods:
            return False
        in_scope = any(
            info.operation == s or info.operation in operations.GROUPS.get(s, ())
            for s in self.scope
        )
        if not in_scope:
            return False
        scoped_name = info.query.get("prefix", "") if info.key is None else info.key
        return scoped_name.startswith(self.keys_prefix)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        del out["thresholds"]
        out["scope"] = list(self.scope)
        out["methods"] = None if self.methods is None else list(self.methods)
        return out

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> FaultPlan:
        known = set(cls.__dataclass_fields__) - {"thresholds"}
        unknown = sorted(set(doc) - known)
        if unknown:
            # A typo such as "p503" would otherwise silently inject nothing.
            raise PlanError(f"unknown fault plan fields {unknown}; known: {sorted(known)}")
        seed = _int(doc, "seed", 0)
        methods = _methods(doc.get("methods"))
        raw_scope = doc.get("scope", "get" if methods is None else "all")
        if isinstance(raw_scope, str):
            raw_scope = [raw_scope]
        if (
            not isinstance(raw_scope, list)
            or not raw_scope
            or any(s not in SCOPES for s in raw_scope)
        ):
            raise PlanError(
                f"scope must be one of {SCOPES} or a list of them, not {doc['scope']!r}"
            )
        scope = tuple(raw_scope)
        bucket = doc.get("bucket")
        keys_prefix = doc.get("keys_prefix", "")
        if (bucket is not None and not isinstance(bucket, str)) or not isinstance(keys_prefix, str):
            raise PlanError("bucket and keys_prefix must be strings")
        probs = {f"p_{k}": _probability(doc, f"p_{k}") for k in KINDS}
        total = math.fsum(probs.values())
        if total > 1 + 1e-9:
            raise PlanError(f"the probabilities sum to {total:g}, more than 1")
        stall_s = None if doc.get("stall_s") is None else _number(doc, "stall_s")
        if probs["p_stall"] > 0 and stall_s is None:
            raise PlanError("p_stall needs stall_s (seconds, or -1 to never answer)")
        if stall_s is not None and stall_s < 0 and stall_s != -1:
            raise PlanError("stall_s is seconds >= 0, or -1 to never answer")
        thresholds = []
        upper = 0.0
        for kind in KINDS:
            p = probs[f"p_{kind}"]
            if p > 0:
                upper += p
                thresholds.append((kind, upper))
        return cls(
            seed=seed,
            scope=scope,
            methods=methods,
            bucket=bucket,
            keys_prefix=keys_prefix,
            stall_s=stall_s,
            burst=_burst(doc.get("burst")),
            thresholds=tuple(thresholds),
            **probs,
        )


_METHODS = ("GET", "HEAD", "PUT", "POST", "DELETE")


def _methods(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if (
        not isinstance(value, list)
        or not value
        or any(not isinstance(m, str) or m.upper() not in _METHODS for m in value)
    ):
        raise PlanError(f"methods must be a list of {_METHODS}, not {value!r}")
    return tuple(m.upper() for m in value)


def _number(doc: dict[str, Any], name: str) -> float:
    value = doc[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PlanError(f"{name} must be a finite number, not {value!r}")
    return float(value)


def _int(doc: dict[str, Any], name: str, default: int) -> int:
    value = doc.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise PlanError(f"{name} must be an integer, not {value!r}")
    return value


def _probability(doc: dict[str, Any], name: str) -> float:
    if name not in doc:
        return 0.0
    p = _number(doc, name)
    if not 0 <= p <= 1:
        raise PlanError(f"{name} must be between 0 and 1, not {p}")
    return p


def _burst(doc: object) -> Burst | None:
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise PlanError("burst must be an object")
    unknown = sorted(set(doc) - {"status", "code", "count", "window_s", "start_after"})
    if unknown:
        raise PlanError(f"unknown burst fields {unknown}")
    status = _int(doc, "status", 503)
    if status not in _DEFAULT_CODE:
        raise PlanError(f"burst status must be one of {sorted(_DEFAULT_CODE)}")
    code = doc.get("code") or _DEFAULT_CODE[status]
    if not isinstance(code, str):
        raise PlanError("burst code must be a string")
    count = None if doc.get("count") is None else _int(doc, "count", 0)
    window_s = None if doc.get("window_s") is None else _number(doc, "window_s")
    if count is None and window_s is None:
        raise PlanError("a burst needs count, window_s or both")
    if (count is not None and count < 1) or (window_s is not None and window_s <= 0):
        raise PlanError("burst count and window_s must be positive")
    start_after = _int(doc, "start_after", 0)
    if start_after < 0:
        raise PlanError("burst start_after must be >= 0")
    return Burst(status, code, count, window_s, start_after)


class FaultInjector:
    def __init__(self, first_byte_delay_s: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._seq = 0
        # Plain latency for every data request (`--delay-ms`, `/_control/delay`); not a fault.
        self.first_byte_delay_s = first_byte_delay_s
        self._install(FaultPlan())

    def _install(self, plan: FaultPlan) -> None:
        self._plan = plan
        self._rng = random.Random(plan.seed)
        self._faultable = 0
        self._burst_sent = 0
        self._burst_started: float | None = None  # time.monotonic()
        self._burst_ended: float | None = None

    def next_seq(self) -> int:
        with self._lock:
            self._seq += 1
            return self._seq

    def set_plan(self, plan: FaultPlan) -> None:
        with self._lock:
            self._install(plan)

    def latency(self) -> Fault:
        """The fault for requests that may not be faulted (auth refusals): latency only."""
        delay = self.first_byte_delay_s
        return Fault(first_byte_delay_s=delay) if delay > 0 else NO_FAULT

    def decide(self, info: RequestInfo) -> Fault:
        base = self.latency()
        with self._lock:
            plan = self._plan
            if plan.empty or not plan.matches(info):
                return base
            self._faultable += 1
            u = self._rng.random()
            burst = plan.burst
            if burst is not None and self._in_burst_locked(burst):
                return Fault(
                    base.first_byte_delay_s,
                    error_for(burst.status, burst.code),
                    kind=str(burst.status),
                )
            kind = next((k for k, upper in plan.thresholds if u < upper), None)
        if kind is None:
            return base
        if kind in ("503", "500", "429"):
            return Fault(base.first_byte_delay_s, error_for(int(kind)), kind=kind)
        if kind == "stall":
            stall_s = plan.stall_s if plan.stall_s is not None else 0.0
            return Fault(math.inf if stall_s < 0 else stall_s, None, None, kind=kind)
        if kind in ("reset_mid_request", "reset_after_request"):
            return Fault(base.first_byte_delay_s, request=RequestFault(kind), kind=kind)
        return Fault(base.first_byte_delay_s, None, BodyFault(kind), kind=kind)

    def _in_burst_locked(self, burst: Burst) -> bool:
        """Whether this faultable request (already counted) falls in the burst."""
        if self._burst_ended is not None or self._faultable <= burst.start_after:
            return False
        now = time.monotonic()
        if self._burst_started is None:
            self._burst_started = now
        elif burst.window_s is not None and now - self._burst_started >= burst.window_s:
            self._burst_ended = self._burst_started + burst.window_s
            return False
        self._burst_sent += 1
        if burst.count is not None and self._burst_sent >= burst.count:
            self._burst_ended = now
        return True

    def describe(self, elapsed: Callable[[float], float]) -> dict[str, Any]:
        """The plan and its progress; times are on the stats clock (`elapsed(monotonic)`)."""
        with self._lock:
            plan, burst = self._plan, self._plan.burst
            started, ended = self._burst_started, self._burst_ended
            if (
                burst is not None
                and burst.window_s is not None
                and started is not None
                and ended is None
                and time.monotonic() - started >= burst.window_s
            ):
                # A window that ran out while no request came is over all the same.
                ended = started + burst.window_s
            state = {
                "faultable_requests": self._faultable,
                "burst_errors_sent": self._burst_sent,
                "burst_started_s": None if started is None else elapsed(started),
                "burst_ended_s": None if ended is None else elapsed(ended),
                "burst_active": burst is not None and started is not None and ended is None,
            }
        return {"plan": plan.to_json(), "state": state}
