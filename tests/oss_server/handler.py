"""HTTP request handling: parse the request as OSS would, verify it, run the operation.

One `OssRequestHandler` instance serves one keep-alive connection. Every response carries a
Content-Length (or is a HEAD), so connections stay reusable after errors too.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import email.utils
import os
import re
import secrets
import select
import socket
import struct
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import unquote, unquote_to_bytes, urlsplit

from . import control, multipart_ops, operations, write_ops
from .errors import OssError, error_code_ec
from .faults import NO_FAULT, BodyFault, Fault, RequestFault, RequestInfo
from .operations import DataRequest, bounded_int, encoding_type
from .oss_xml import error_xml, list_v1_xml, list_v2_xml
from .signature import ReceivedRequest
from .stats import Classified
from .store import ObjectMeta

if TYPE_CHECKING:
    from .server import OssHTTPServer

_CHUNK = 1 << 20
# Small unread request bodies are drained so the connection survives an error answer; larger
# ones are cheaper to abandon by closing the connection.
_DRAIN_LIMIT = 8 << 20
_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$")
# How much of a request body a mid-request reset reads first.
_MID_REQUEST_MAX = 1 << 20
# How often a first-byte wait looks for a vanished client or a stopping server.
_STALL_POLL_S = 0.1


class _ConnectionCut(Exception):
    """A fault ended the connection mid-answer; nothing more may be sent on it."""


class _Unsatisfiable(Exception):
    pass


def resolve_range(value: str, size: int, standard: bool) -> tuple[int, int] | None:
    """The inclusive byte range to serve, or None for "the whole object with 200".

    OSS by default ignores any Range it cannot serve exactly (past the end, malformed) and sends
    the whole object; with `x-oss-range-behavior: standard` it follows RFC 7233: the end is
    clamped, a suffix longer than the object means all of it, a start past the end is 416.
    """
    first = value.split(",", 1)[0]
    if "," in value and standard:
        raise _Unsatisfiable()  # OSS does not do multi-range; standard mode says so
    m = _RANGE_RE.match(first)
    if not m or (m[1] == "" and m[2] == ""):
        return None
    if m[1] == "":
        suffix = int(m[2])
        if suffix == 0 or size == 0:
            if standard:
                raise _Unsatisfiable()
            return None
        if suffix > size:
            return (0, size - 1) if standard else None
        return size - suffix, size - 1
    start = int(m[1])
    end = int(m[2]) if m[2] else size - 1
    if m[2] and end < start:
        return None  # syntactically invalid: ignored in both modes, as RFC 7233 says
    if start >= size:
        if standard:
            raise _Unsatisfiable()
        return None
    if end >= size:
        if not standard:
            return None
        end = size - 1
    return start, end


def _new_request_id() -> str:
    return secrets.token_hex(12).upper()


def _http_date(ts: float) -> str:
    return email.utils.formatdate(ts, usegmt=True)


def encode_token(marker: str) -> str:
    # Unpadded base64url has only unreserved characters, so the token survives any mix of
    # URL-encoding and decoding by clients (the SDKs decode it when encoding-type=url).
    return base64.urlsafe_b64encode(marker.encode("utf-8")).decode("ascii").rstrip("=")


def decode_token(token: str) -> str:
    try:
        padded = token + "=" * (-len(token) % 4)
        return base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise OssError(
            400, "InvalidArgument", "The continuation token provided is incorrect."
        ) from None


class OssRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AliyunOSS"
    # Idle keep-alive connections are dropped after this long so abandoned clients do not pin
    # threads forever; long enough for any test to keep its pool.
    timeout = 600
    server: OssHTTPServer
    # Per-request state, reset at the start of each request on this connection.
    _request_id: str
    _status: int
    _code: str | None
    _sent: int
    _received: int
    _body_pending: bool

    # -- connection lifecycle ---------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        self.server.state.stats.connection_opened()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.state.stats.connection_closed()

    def version_string(self) -> str:
        return self.server_version

    def date_time_string(self, timestamp: float | None = None) -> str:
        # The Date header is the server's (possibly skewed) clock, as on OSS: clients compute
        # their clock offset from it after a RequestTimeTooSkewed.
        return super().date_time_string(self.server.state.now() if timestamp is None else timestamp)

    def log_message(self, format: str, *args: object) -> None:
        if self.server.state.verbose:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    # -- request parsing ----------------------------------------------------------------------

    def _split_target(self) -> tuple[str, str]:
        target = self.path
        if target.startswith(("http://", "https://")):
            parts = urlsplit(target)
            target = parts.path + (f"?{parts.query}" if parts.query else "")
        raw_path, _, raw_query = target.partition("?")
        return raw_path, raw_query

    @staticmethod
    def _decode_path(raw_path: str) -> str:
        # http.server decoded the request line as latin-1; undo that to get the wire bytes, so
        # unescaped UTF-8 in a path works as well as %-escapes.
        try:
            return unquote_to_bytes(raw_path.encode("latin-1")).decode("utf-8")
        except UnicodeError:
            raise OssError(
                400, "InvalidObjectName", "The object name is not valid UTF-8."
            ) from None

    @staticmethod
    def _decode_query(raw_query: str) -> list[tuple[str, str]]:
        pairs = []
        for part in raw_query.split("&"):
            if not part:
                continue
            name, _, value = part.partition("=")
            try:
                # unquote, not unquote_plus: OSS does not treat `+` as a space in queries.
                pairs.append((unquote(name, errors="strict"), unquote(value, errors="strict")))
            except UnicodeError:
                raise OssError(
                    400, "InvalidArgument", "A query parameter is not valid UTF-8."
                ) from None
        return pairs

    def _received_headers(self) -> list[tuple[str, str]]:
        out = []
        for name, value in self.headers.items():
            with contextlib.suppress(UnicodeError):
                value = value.encode("latin-1").decode("utf-8")
            # OSS trims header values before signing them (SDK-side trimming varies).
            out.append((name, value.strip()))
        return out

    def _address(self, decoded_path: str) -> tuple[str | None, str | None]:
        """(bucket, key) from the Host (virtual-hosted) or the path (path style)."""
        suffix = self.server.state.vhost_suffix
        host = (self.headers.get("Host") or "").strip().lower()
        if suffix:
            name = host if ":" in suffix else host.rsplit(":", 1)[0]
            if name.endswith("." + suffix):
                bucket = name[: -len(suffix) - 1]
                key = decoded_path[1:] if decoded_path.startswith("/") else decoded_path
                return bucket, key or None
        if decoded_path in ("", "/"):
            return None, None
        bucket, sep, key = decoded_path.lstrip("/").partition("/")
        return bucket, (key if sep and key else None)

    # -- request bodies -----------------------------------------------------------------------

    def content_length(self) -> int | None:
        value = self.headers.get("Content-Length")
        if value is None:
            return None
        try:
            length = int(value)
        except ValueError:
            raise OssError(400, "InvalidArgument", "Content-Length is not a number.") from None
        if length < 0:
            raise OssError(400, "InvalidArgument", "Content-Length is negative.")
        return length

    def _is_chunked(self) -> bool:
        return "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()

    def iter_body(self) -> Iterator[bytes]:
        self._body_pending = False
        if self._is_chunked():
            yield from self._iter_chunked()
            return
        length = self.content_length()
        if length is None:
            raise OssError(411, "MissingContentLength", "You must provide the Content-Length.")
        left = length
        while left > 0:
            chunk = self.rfile.read(min(left, _CHUNK))
            if not chunk:
                self.close_connection = True
                raise ConnectionError("client closed the connection mid-body")
            left -= len(chunk)
            self._received += len(chunk)
            yield chunk

    def _iter_chunked(self) -> Iterator[bytes]:
        while True:
            line = self.rfile.readline(65537)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                raise ConnectionError("malformed chunked body") from None
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                return
            left = size
            while left > 0:
                chunk = self.rfile.read(min(left, _CHUNK))
                if not chunk:
                    self.close_connection = True
                    raise ConnectionError("client closed the connection mid-body")
                left -= len(chunk)
                self._received += len(chunk)
                yield chunk
            self.rfile.readline(3)

    def read_body(self, limit: int) -> bytes:
        """The whole (small) request body; 400 if it is over `limit` bytes."""
        length = self.content_length()
        if length is not None and length > limit:
            raise OssError(400, "InvalidArgument", f"The request body is over {limit} bytes.")
        out = bytearray()
        for chunk in self.iter_body():
            out += chunk
            if len(out) > limit:
                raise OssError(400, "InvalidArgument", f"The request body is over {limit} bytes.")
        return bytes(out)

    def discard_body(self, limit: int | None = _DRAIN_LIMIT) -> None:
        """Read and drop what is left of the request body so the connection can serve the next
        request; a body over `limit` bytes (None: no limit) closes the connection instead."""
        if not self._body_pending:
            return
        self._body_pending = False
        if self._is_chunked():
            if limit is None:
                self._body_pending = True
                with contextlib.suppress(ConnectionError):
                    for _ in self.iter_body():
                        pass
                return
            self.close_connection = True
            return
        try:
            length = self.content_length()
        except OssError:
            self.close_connection = True
            return
        if not length:
            return
        if limit is not None and length > limit:
            self.close_connection = True
            return
        while length > 0:
            chunk = self.rfile.read(min(length, _CHUNK))
            if not chunk:
                self.close_connection = True
                return
            length -= len(chunk)
            self._received += len(chunk)

    def _cut_request(self, fault: Fault) -> None:
        """Apply a request fault: read half the body (mid) or all of it (after), then reset."""
        self._count_fault(fault)
        if fault.request is RequestFault.RESET_AFTER_REQUEST:
            self.discard_body(limit=None)
        elif self._body_pending:
            self._body_pending = False
            length = None if self._is_chunked() else self.content_length()
            want = min((length if length is not None else 2 * _CHUNK) // 2, _MID_REQUEST_MAX)
            if want > 0:
                # One read of what has arrived so far, up to `want`: the client is still sending.
                self._received += len(self.rfile.read1(want))
        self._cut(BodyFault.RESET)

    # -- responses ----------------------------------------------------------------------------

    def _count_fault(self, fault: Fault) -> None:
        if fault.kind is not None:
            self.server.state.stats.fault_injected(fault.kind)

    def _client_gone(self, poller: select.poll, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for the client to close or reset the connection."""
        if not poller.poll(timeout_s * 1000):
            return False
        try:
            peeked = self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:
            return True
        if peeked:
            # Bytes of a pipelined request: the client is still there. Sleep, since the
            # socket stays readable and polling again would spin.
            time.sleep(timeout_s)
            return False
        return True

    def _wait_first_byte(self, delay_s: float) -> None:
        """Sleep before the status line, but give up (and drop the connection) as soon as the
        client disconnects or the server stops, so that stalls never outlive either."""
        deadline = time.monotonic() + delay_s
        stopping = self.server.state.stopping
        poller = select.poll()
        poller.register(self.connection, select.POLLIN | select.POLLPRI)
        while (left := deadline - time.monotonic()) > 0:
            if stopping.is_set():
                raise ConnectionAbortedError("server stopping during a first-byte wait")
            if self._client_gone(poller, min(left, _STALL_POLL_S)):
                raise ConnectionAbortedError("client left during a first-byte wait")

    def _cut(self, body: BodyFault) -> None:
        """End the connection as the fault says, and stop answering on it."""
        self.close_connection = True
        if body is BodyFault.RESET:
            # Linger 0 makes close() send RST instead of FIN. The makefile()'d reader holds a
            # reference that would defer the real close, so it goes first.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()
            self.connection.close()
        else:
            # A clean FIN: the client reads an early end of the body, not an error.
            self.connection.shutdown(socket.SHUT_WR)
        raise _ConnectionCut(body.value)

    def _start(self, status: int, headers: dict[str, str], fault: Fault, body_len: int) -> None:
        """Wait for the first byte as the fault says, then send the status line and headers.

        `body_len` is how many body bytes will follow (0 for HEAD).
        """
        if fault.first_byte_delay_s > 0:
            if fault.kind == "stall":
                self._count_fault(fault)
            self._wait_first_byte(fault.first_byte_delay_s)
        if fault.body in (BodyFault.RESET, BodyFault.TRUNCATE) and body_len == 0:
            self._count_fault(fault)
            assert fault.body is not None
            self._cut(fault.body)
        self.send_response(status)
        self.send_header("x-oss-request-id", self._request_id)
        for name, value in headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self._status = status

    def send_bytes(
        self, status: int, headers: dict[str, str], body: bytes, fault: Fault = NO_FAULT
    ) -> None:
        headers = {**headers, "Content-Length": str(len(body))}
        length = 0 if self.command == "HEAD" else len(body)
        self._start(status, headers, fault, length)
        view = memoryview(body)
        self._send_body(
            length,
            lambda offset, count: self.wfile.write(view[offset : offset + count]),
            lambda offset, count: body[offset : offset + count],
            fault,
        )

    def _send_body(
        self,
        length: int,
        send: Callable[[int, int], int],
        read: Callable[[int, int], bytes],
        fault: Fault,
    ) -> None:
        """Send body bytes [0, length) with `send(offset, count) -> sent`, damaged as the
        fault says; `read(offset, count)` gives the bytes a corruption starts from."""

        def put(offset: int, count: int) -> int:
            return send(offset, count) if count > 0 else 0  # sendfile() refuses a count of 0

        if length == 0:
            return
        action = fault.body
        if action is None:
            sent = put(0, length)
        elif action is BodyFault.CORRUPT:
            self._count_fault(fault)
            middle = length // 2
            sent = put(0, middle)
            if sent == middle:
                self.wfile.write(bytes([read(middle, 1)[0] ^ 0xFF]))
                sent += 1
                sent += put(middle + 1, length - middle - 1)
        else:
            self._count_fault(fault)
            self._sent += put(0, length // 2)
            self._cut(action)
        self._sent += sent
        if sent != length:
            self.close_connection = True

    def _send_error(self, err: OssError, fault: Fault) -> None:
        self.discard_body()
        host_id = self.headers.get("Host") or "oss-test-server"
        ec = error_code_ec(err.code)
        xml = error_xml(err.code, err.message, self._request_id, host_id, ec, err.extra)
        headers = {**err.headers, "x-oss-ec": ec}
        self._code = err.code
        if self.command == "HEAD":
            # HEAD answers carry no body, so OSS puts the error document in a header.
            headers["x-oss-err"] = base64.b64encode(xml).decode("ascii")
            self.send_bytes(err.status, {**headers, "Content-Length": "0"}, b"", fault)
            return
        headers["Content-Type"] = "application/xml"
        self.send_bytes(err.status, headers, xml, fault)

    def _send_file(
        self,
        status: int,
        headers: dict[str, str],
        f: BinaryIO,
        offset: int,
        length: int,
        fault: Fault,
    ) -> None:
        """Send bytes [offset, offset + length) of the open data file `f` (opened before the
        metadata in `headers` was read from the store, so they always describe its bytes)."""
        body_len = 0 if self.command == "HEAD" else length
        self._start(status, {**headers, "Content-Length": str(length)}, fault, body_len)
        self._send_body(
            body_len,
            lambda at, count: self.connection.sendfile(f, offset + at, count),
            lambda at, count: os.pread(f.fileno(), count, offset + at),
            fault,
        )

    # -- dispatch -----------------------------------------------------------------------------

    def _handle(self) -> None:
        self._request_id = _new_request_id()
        self._status = 0
        self._code = None
        self._sent = 0
        self._received = 0
        self._body_pending = True
        state = self.server.state
        raw_path, raw_query = self._split_target()
        if raw_path == "/_control" or raw_path.startswith("/_control/"):
            state.stats.control_request()
            control.handle(self, raw_path, raw_query)
            return
        state.stats.begin(self.command)
        counted = Classified(self.command, operations.UNSUPPORTED)
        # Until the signature is verified only latency applies: faults never mask a refusal.
        fault = state.faults.latency()
        try:
            try:
                path = self._decode_path(raw_path)
                query = dict(pairs := self._decode_query(raw_query))
                bucket, key = self._address(path)
                headers = self._received_headers()
                lower = {n.lower(): v for n, v in headers}
                copy_source = "x-oss-copy-source" in lower
                operation = operations.classify(self.command, bucket, key, query, copy_source)
                counted = Classified(
                    self.command, operation, tuple(operations.subresources(query, copy_source))
                )
                info = RequestInfo(
                    state.faults.next_seq(), self.command, operation, bucket, key, query, lower
                )
                state.verifier.verify(ReceivedRequest(self.command, bucket, key, pairs, headers))
                fault = state.faults.decide(info)
                if fault.request is not None:
                    self._cut_request(fault)
                if fault.error is not None:
                    self._count_fault(fault)
                    # The body first, so the client reads the error on a usable connection.
                    self.discard_body(limit=None)
                    raise fault.error
                if bucket is None:
                    raise OssError(
                        501, "NotImplemented", "Service-level operations are not supported."
                    )
                request = DataRequest(self.command, operation, bucket, key, query, lower)
                self._dispatch(request, fault)
            except OssError as err:
                if err.code == "SignatureDoesNotMatch" and "CanonicalRequest" in err.extra:
                    sys.stderr.write(
                        f"SignatureDoesNotMatch {self.command} {self.path}\n"
                        f"--- canonical request ---\n{err.extra['CanonicalRequest']}\n"
                        f"--- string to sign ---\n{err.extra['StringToSign']}\n"
                    )
                self._send_error(err, fault)
        except (ConnectionError, TimeoutError, _ConnectionCut):
            self.close_connection = True
        except Exception:
            # A server bug: answer 500 (a retryable error for clients) rather than dropping the
            # connection silently, and show the traceback in the server's stderr.
            traceback.print_exc()
            if self._status == 0:
                self.close_connection = True
                self._send_error(OssError(500, "InternalError", "Test server bug."), NO_FAULT)
        finally:
            if self._status == 0:
                self.close_connection = True
            state.stats.end(self._status or 499, self._code, self._sent, self._received, counted)

    def _dispatch(self, r: DataRequest, fault: Fault) -> None:
        operations.check_params(r.operation, r.query)
        handler = _OPERATIONS.get(r.operation)
        if handler is None:
            raise OssError(
                501,
                "NotImplemented",
                f"{r.method} {'an object' if r.key else 'a bucket'} with {sorted(r.query)} "
                "is not supported.",
            )
        handler(self, r, fault)

    # -- operations ---------------------------------------------------------------------------

    @staticmethod
    def _object_headers(meta: ObjectMeta) -> dict[str, str]:
        return {
            "Content-Type": meta.content_type,
            "ETag": meta.etag,
            "Last-Modified": _http_date(meta.last_modified),
            "Accept-Ranges": "bytes",
            "x-oss-object-type": "Normal",
            "x-oss-storage-class": "Standard",
        }

    def get_object(self, r: DataRequest, fault: Fault) -> None:
        meta, f = self.server.state.store.open_object(r.bucket, r.object_key)
        with f:
            self._get_open_object(meta, f, r.headers, fault)

    def _get_open_object(
        self, meta: ObjectMeta, f: BinaryIO, headers: dict[str, str], fault: Fault
    ) -> None:
        self.discard_body()
        if_match = headers.get("if-match")
        if if_match is not None and if_match.strip() != meta.etag:
            # As OSS: the read is pinned to a version that is no longer there.
            raise OssError(
                412,
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold.",
            )
        out = self._object_headers(meta)
        span = None
        range_value = headers.get("range")
        if range_value is not None and self.command == "GET":
            standard = headers.get("x-oss-range-behavior", "").lower() == "standard"
            try:
                span = resolve_range(range_value, meta.size, standard)
            except _Unsatisfiable:
                raise OssError(
                    416,
                    "InvalidRange",
                    "The requested range cannot be satisfied",
                    headers={"Content-Range": f"bytes */{meta.size}"},
                ) from None
        # The whole object's CRC-64, on ranged answers too ("A GET request with a Range header
        # still returns the CRC-64 value of the entire object", OSS's CRC-64 guide).
        if meta.crc64 is not None:
            out["x-oss-hash-crc64ecma"] = str(meta.crc64)
        if span is None:
            return self._send_file(200, out, f, 0, meta.size, fault)
        start, end = span
        out["Content-Range"] = f"bytes {start}-{end}/{meta.size}"
        return self._send_file(206, out, f, start, end - start + 1, fault)

    def put_bucket(self, r: DataRequest, fault: Fault) -> None:
        self.discard_body(limit=None)  # CreateBucketConfiguration (storage class...) not modelled
        self.server.state.store.create_bucket(r.bucket)
        self.send_bytes(200, {}, b"", fault)

    def list_v2(self, r: DataRequest, fault: Fault) -> None:
        query = r.query
        if query.get("list-type") != "2":
            raise OssError(400, "InvalidArgument", "list-type must be 2.")
        max_keys = bounded_int(query, "max-keys", 100, 0, 1000)
        encoding = encoding_type(query)
        token = query.get("continuation-token", "")
        start_after = query.get("start-after", "")
        marker = decode_token(token) if token else start_after
        self.discard_body()
        page, last = self.server.state.store.list(
            r.bucket, query.get("prefix", ""), query.get("delimiter", ""), marker, max_keys
        )
        next_token = encode_token(last) if page.is_truncated else ""
        body = list_v2_xml(page, encoding, start_after, token, next_token)
        self.send_bytes(200, {"Content-Type": "application/xml"}, body, fault)

    def list_v1(self, r: DataRequest, fault: Fault) -> None:
        query = r.query
        max_keys = bounded_int(query, "max-keys", 100, 0, 1000)
        encoding = encoding_type(query)
        marker = query.get("marker", "")
        self.discard_body()
        page, last = self.server.state.store.list(
            r.bucket, query.get("prefix", ""), query.get("delimiter", ""), marker, max_keys
        )
        next_marker = last if page.is_truncated else ""
        body = list_v1_xml(page, encoding, marker, next_marker)
        self.send_bytes(200, {"Content-Type": "application/xml"}, body, fault)


_Operation = Callable[[OssRequestHandler, DataRequest, Fault], None]
_OPERATIONS: dict[str, _Operation] = {
    operations.GET_OBJECT: OssRequestHandler.get_object,
    operations.HEAD_OBJECT: OssRequestHandler.get_object,
    operations.LIST_OBJECTS: OssRequestHandler.list_v1,
    operations.LIST_OBJECTS_V2: OssRequestHandler.list_v2,
    operations.PUT_BUCKET: OssRequestHandler.put_bucket,
    operations.PUT_OBJECT: write_ops.put_object,
    operations.COPY_OBJECT: write_ops.copy_object,
    operations.DELETE_OBJECT: write_ops.delete_object,
    operations.INITIATE_UPLOAD: multipart_ops.initiate,
    operations.UPLOAD_PART: multipart_ops.upload_part,
    operations.COMPLETE_UPLOAD: multipart_ops.complete,
    operations.ABORT_UPLOAD: multipart_ops.abort,
    operations.LIST_UPLOADS: multipart_ops.list_uploads,
    operations.LIST_PARTS: multipart_ops.list_parts,
}
