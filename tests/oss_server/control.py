"""Test-only control endpoints under `/_control/` (unsigned; OSS bucket names cannot start with
`_`, so they never shadow a bucket).

    GET  /_control/health         -> {"ok": true}
    GET  /_control/stats          -> counters (see stats.py); `?timeline=0` leaves out the
                                     in-flight timeline
    POST /_control/stats/reset    -> counters after zeroing
    GET  /_control/keys           -> {"keys": [{"id", "has_token", "expired"}]}
    POST /_control/keys           {"add": [{"id", "secret", "token"?}], "remove": [id],
                                   "expire": [id]} -> {"keys": [...]}
    POST /_control/generate       {"bucket", "key", "size", "seed"?, "crc"?}
                                  -> {"bucket", "key", "size", "etag", "crc64": str | null}
    POST /_control/clock          {"offset_s": float} -> {"offset_s": float}
    POST /_control/delay          {"delay_ms": float} -> {"delay_ms": float}
    GET  /_control/uploads        -> {"uploads": [{"bucket", "key", "upload_id", "parts": int,
                                     "bytes": int}]}: multipart uploads in progress
    GET  /_control/faults         -> {"plan": {...}, "state": {...}}
    POST /_control/faults         a fault plan (see faults.py) replacing the current one; `{}`
                                  clears it -> as GET
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .errors import OssError
from .faults import FaultPlan, PlanError
from .signature import AccessKey

if TYPE_CHECKING:
    from .handler import OssRequestHandler
    from .server import ServerState


class _BadRequest(Exception):
    pass


def _read_json(h: OssRequestHandler) -> dict[str, Any]:
    try:
        raw = b"".join(h.iter_body())
    except OssError:
        return {}
    if not raw.strip():
        return {}
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise _BadRequest(f"body is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise _BadRequest("body must be a JSON object")
    return doc


def _keys(state: ServerState, body: dict[str, Any]) -> dict[str, Any]:
    for spec in body.get("add", []):
        if not isinstance(spec, dict) or not spec.get("id") or not spec.get("secret"):
            raise _BadRequest("each added key needs an id and a secret")
        state.keys.add(AccessKey(str(spec["id"]), str(spec["secret"]), spec.get("token") or None))
    for key_id in body.get("remove", []):
        state.keys.remove(str(key_id))
    for key_id in body.get("expire", []):
        state.keys.expire(str(key_id))
    return {"keys": state.keys.describe()}


def _generate(state: ServerState, body: dict[str, Any]) -> dict[str, Any]:
    try:
        bucket, key, size = str(body["bucket"]), str(body["key"]), int(body["size"])
        seed = int(body.get("seed", 0))
    except (KeyError, TypeError, ValueError):
        raise _BadRequest("generate needs bucket, key, size (int) and optionally seed") from None
    if size < 0:
        raise _BadRequest("size must be >= 0")
    crc = body.get("crc")
    meta = state.store.generate(bucket, key, size, seed, None if crc is None else bool(crc))
    return {
        "bucket": meta.bucket,
        "key": meta.key,
        "size": meta.size,
        "etag": meta.etag,
        "crc64": None if meta.crc64 is None else str(meta.crc64),
    }


def _number(body: dict[str, Any], name: str) -> float:
    try:
        return float(body[name])
    except (KeyError, TypeError, ValueError):
        raise _BadRequest(f"body needs a number {name!r}") from None


def _faults(state: ServerState, body: dict[str, Any] | None) -> dict[str, Any]:
    if body is not None:
        try:
            plan = FaultPlan.from_json(body)
        except PlanError as e:
            raise _BadRequest(str(e)) from None
        state.faults.set_plan(plan)
    return state.faults.describe(state.stats.elapsed)


def _route(h: OssRequestHandler, path: str, raw_query: str) -> dict[str, Any]:
    state = h.server.state
    method = h.command
    if method == "GET" and path == "/_control/health":
        return {"ok": True}
    if method == "GET" and path == "/_control/stats":
        return state.stats.snapshot(timeline="timeline=0" not in raw_query.split("&"))
    if method == "POST" and path == "/_control/stats/reset":
        _read_json(h)
        state.stats.reset()
        return state.stats.snapshot()
    if method == "GET" and path == "/_control/keys":
        return {"keys": state.keys.describe()}
    if method == "POST" and path == "/_control/keys":
        return _keys(state, _read_json(h))
    if method == "POST" and path == "/_control/generate":
        return _generate(state, _read_json(h))
    if method == "POST" and path == "/_control/clock":
        state.clock_offset_s = _number(_read_json(h), "offset_s")
        return {"offset_s": state.clock_offset_s}
    if method == "POST" and path == "/_control/delay":
        delay_ms = _number(_read_json(h), "delay_ms")
        state.faults.first_byte_delay_s = max(0.0, delay_ms / 1000)
        return {"delay_ms": delay_ms}
    if method == "GET" and path == "/_control/uploads":
        return {"uploads": state.uploads.describe()}
    if method == "GET" and path == "/_control/faults":
        return _faults(state, None)
    if method == "POST" and path == "/_control/faults":
        return _faults(state, _read_json(h))
    raise LookupError(f"no control endpoint {method} {path}")


def handle(h: OssRequestHandler, raw_path: str, raw_query: str) -> None:
    path = raw_path.rstrip("/")
    status = 200
    try:
        result = _route(h, path, raw_query)
    except LookupError as e:
        status, result = 404, {"error": str(e)}
    except (_BadRequest, OssError) as e:
        status, result = 400, {"error": str(e)}
    except Exception as e:  # a bug here must not kill the connection without an answer
        status, result = 500, {"error": f"{type(e).__name__}: {e}"}
    h.discard_body()
    body = json.dumps(result).encode("utf-8")
    h.send_bytes(status, {"Content-Type": "application/json"}, body)
