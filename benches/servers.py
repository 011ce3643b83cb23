"""Benchmark servers: a `bucket/key` file tree served by nginx, listed by a small responder.

- nginx (Debian `nginx-light` + `libnginx-mod-http-echo`) serves GET/HEAD/Range for every
  object, path style (`/bucket/key`, Host `127.0.0.1:PORT`) and virtual-hosted style (`Host:
  bucket.any`, matched by `server_name ~^(?<bucket>[^.]+)\\.`). It ignores `Authorization`, so
  every client's signed requests just work. Like OSS it sends `x-oss-hash-crc64ecma` on object
  responses (from a precomputed map), so clients that verify it pay that cost here too.
- Requests naming a bucket rather than a key (`/bucket/?list-type=2...`, `/?list-type=2` on a
  virtual host) are proxied to :class:`ListResponder`, which answers ListObjectsV2 (and V1) over
  the same tree: OSS XML (no namespace, `<Type>`) for OSS-signed requests, S3 XML (with the S3
  namespace) for SigV4-signed ones.
- Write port (a third port, for the checkpoint benchmark): PUT of whole objects and of multipart
  parts is read by nginx into one memory buffer of up to 17 MiB (larger bodies spill to a file
  on tmpfs) and dropped, answered 200 with a fresh ETag; InitiateMultipartUpload,
  CompleteMultipartUpload, AbortMultipartUpload and DeleteObject (POST, DELETE) go to
  :class:`ListResponder`, which hands out upload ids and answers completion without assembling
  anything. CopyObject (a PUT with `x-oss-copy-source` or `x-amz-copy-source`) and every
  request for a DCP metadata file (`.metadata`, `.metadata.tmp`) go to the responder too, which
  keeps those small files in memory (falling back to the tree for reads), so a DCP save can
  write, rename and read back its metadata. GET and HEAD are served as on the fast port. So a
  save costs the server one receive
  per byte: the cost of taking the bytes, not of keeping them (written to tmpfs instead, wrk's
  16 MiB PUTs went from ~3,400 to ~840 MB/s, below what clients reach).
- Latency mode: a second port on the same nginx where every request first waits (`echo_sleep`, a
  non-blocking nginx timer) and then is served exactly like the fast port (`echo_exec` to a
  named location), so the delay costs no thread and no extra hop.

Everything listens on 127.0.0.1 only. ``python benches/servers.py --root DIR`` runs the servers
until interrupted (for poking at them by hand).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import http.server
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

ECHO_MODULE = "/usr/lib/nginx/modules/ngx_http_echo_module.so"
S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


# --------------------------------------------------------------------------------------------
# ListObjects responder


@dataclass(frozen=True)
class Entry:
    key: str
    size: int
    etag: str
    mtime: float


class Index:
    """Sorted keys of every bucket (a directory of the root), with nginx-compatible ETags."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.buckets: dict[str, list[Entry]] = {}
        self.reload()

    def reload(self) -> None:
        buckets: dict[str, list[Entry]] = {}
        if self.root.is_dir():
            for bucket_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
                entries: list[Entry] = []
                for dirpath, _dirs, files in os.walk(bucket_dir):
                    for name in files:
                        path = Path(dirpath, name)
                        st = path.stat()
                        key = path.relative_to(bucket_dir).as_posix()
                        # nginx's ETag: "<mtime hex>-<size hex>"
                        etag = f'"{int(st.st_mtime):x}-{st.st_size:x}"'
                        entries.append(Entry(key, st.st_size, etag, st.st_mtime))
                entries.sort(key=lambda e: e.key.encode())
                buckets[bucket_dir.name] = entries
        self.buckets = buckets


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def list_objects_xml(
    index: Index, bucket: str, query: dict[str, str], s3_style: bool
) -> tuple[int, bytes]:
    """The ListObjects (V2 when ``list-type=2``, else V1) answer for one page."""
    entries = index.buckets.get(bucket)
    if entries is None:
        body = (
            "<?xml version='1.0' encoding='UTF-8'?>\n<Error><Code>NoSuchBucket</Code>"
            f"<Message>The specified bucket does not exist.</Message><BucketName>{escape(bucket)}"
            "</BucketName><RequestId>bench</RequestId></Error>"
        )
        return 404, body.encode()
    v2 = query.get("list-type") == "2"
    prefix = query.get("prefix", "")
    delimiter = query.get("delimiter", "")
    max_keys = max(0, min(int(query.get("max-keys", "1000") or 1000), 1000))
    url = query.get("encoding-type") == "url"
    if v2:
        token = query.get("continuation-token", "")
        after = base64.urlsafe_b64decode(token).decode() if token else query.get("start-after", "")
    else:
        after = query.get("marker", "")

    def enc(s: str) -> str:
        return escape(urllib.parse.quote(s, safe="/") if url else s)

    contents: list[Entry] = []
    prefixes: list[str] = []
    last = ""
    truncated = False
    for e in entries:  # a linear scan: listings are a handful of requests per run
        if not e.key.startswith(prefix) or (after and e.key.encode() <= after.encode()):
            continue
        if len(contents) + len(prefixes) >= max_keys:
            truncated = True
            break
        if delimiter:
            cut = e.key.find(delimiter, len(prefix))
            if cut >= 0:
                common = e.key[: cut + len(delimiter)]
                if prefixes and prefixes[-1] == common:
                    continue
                prefixes.append(common)
                last = common
                continue
        contents.append(e)
        last = e.key
    ns = f' xmlns="{S3_NS}"' if s3_style else ""
    out = [f"<?xml version='1.0' encoding='UTF-8'?>\n<ListBucketResult{ns}>"]
    out.append(f"<Name>{escape(bucket)}</Name><Prefix>{enc(prefix)}</Prefix>")
    out.append(f"<MaxKeys>{max_keys}</MaxKeys>")
    if delimiter:
        out.append(f"<Delimiter>{enc(delimiter)}</Delimiter>")
    if url:
        out.append("<EncodingType>url</EncodingType>")
    out.append(f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
    if v2:
        out.append(f"<KeyCount>{len(contents) + len(prefixes)}</KeyCount>")
        if query.get("continuation-token"):
            out.append(
                f"<ContinuationToken>{escape(query['continuation-token'])}</ContinuationToken>"
            )
        if query.get("start-after"):
            out.append(f"<StartAfter>{enc(query['start-after'])}</StartAfter>")
        if truncated:
            token = base64.urlsafe_b64encode(last.encode()).decode()
            out.append(f"<NextContinuationToken>{token}</NextContinuationToken>")
    else:
        out.append(f"<Marker>{enc(after)}</Marker>")
        if truncated:
            out.append(f"<NextMarker>{enc(last)}</NextMarker>")
    for e in contents:
        out.append(
            f"<Contents><Key>{enc(e.key)}</Key><LastModified>{_iso(e.mtime)}</LastModified>"
            f"<ETag>{escape(e.etag)}</ETag><Size>{e.size}</Size>"
            "<StorageClass>STANDARD</StorageClass><Type>Normal</Type></Contents>"
        )
    for p in prefixes:
        out.append(f"<CommonPrefixes><Prefix>{enc(p)}</Prefix></CommonPrefixes>")
    out.append("</ListBucketResult>")
    return 200, "".join(out).encode()


class _ListHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    wbufsize = 1 << 16  # one write per answer (flushed after each request), no Nagle stall
    server: _ListServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _bucket(self, path: str) -> str:
        first = path.lstrip("/").split("/", 1)[0]
        if first:
            return urllib.parse.unquote(first)
        # virtual-hosted: the bucket is the Host's first label
        return self.headers.get("Host", "").split(":", 1)[0].split(".", 1)[0]

    def _bucket_key(self, path: str) -> tuple[str, str]:
        host = self.headers.get("Host", "").split(":", 1)[0]
        path = urllib.parse.unquote(path.lstrip("/"))
        if re.fullmatch(r"[\d.]+", host) or host in ("localhost", ""):  # path style
            bucket, _, key = path.partition("/")
            return bucket, key
        return host.split(".", 1)[0], path

    def _answer(self, status: int, body: bytes, head: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-oss-request-id", "bench")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _small_file(self, path: str) -> tuple[str, str] | None:
        """``(bucket, key)`` when the request names a DCP metadata file (kept here)."""
        bucket, key = self._bucket_key(path)
        return (bucket, key) if key.endswith((".metadata", ".metadata.tmp")) else None

    def _serve_small(self, bucket: str, key: str, head: bool) -> None:
        body = self.server.small.read(bucket, key)
        if body is None:
            self._answer(404, b"<Error><Code>NoSuchKey</Code></Error>", head)
            return
        status, start, end = 200, 0, len(body) - 1
        ranged = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if ranged and body:
            start = int(ranged.group(1))
            end = min(int(ranged.group(2) or len(body) - 1), len(body) - 1)
            status = 206
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start + 1 if body else 0))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(body)}")
        self.send_header("ETag", f'"{zlib.crc32(body):08x}-{len(body):x}"')
        self.send_header("Last-Modified", self.date_time_string(int(time.time())))
        self.send_header("x-oss-request-id", "bench")
        self.end_headers()
        if not head:
            self.wfile.write(body[start : end + 1])

    def do_PUT(self) -> None:
        """CopyObject, and PutObject / UploadPart of a metadata file (kept in memory)."""
        parsed = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests += 1
        bucket, key = self._bucket_key(parsed.path)
        source = self.headers.get("x-oss-copy-source") or self.headers.get("x-amz-copy-source")
        small = self.server.small
        if source:
            src_bucket, _, src_key = urllib.parse.unquote(source).lstrip("/").partition("/")
            copied = small.read(src_bucket, src_key.split("?", 1)[0])
            if copied is None:
                self._answer(404, b"<Error><Code>NoSuchKey</Code></Error>", head=False)
                return
            small.write(bucket, key, copied)
            sigv4 = self.headers.get("Authorization", "").startswith("AWS4-")
            ns = f' xmlns="{S3_NS}"' if sigv4 else ""
            result = (
                f'<?xml version="1.0" encoding="UTF-8"?>\n<CopyObjectResult{ns}>'
                f"<LastModified>{_iso(time.time())}</LastModified>"
                f'<ETag>"{zlib.crc32(copied):08x}"</ETag></CopyObjectResult>'
            )
            self._answer(200, result.encode(), head=False)
            return
        if "uploadId" in query:
            small.put_part(query["uploadId"], int(query.get("partNumber", "0")), body)
        else:
            small.write(bucket, key, body)
        self.send_response(200)
        self.send_header("ETag", f'"{zlib.crc32(body):08x}"')
        self.send_header("Content-Length", "0")
        self.send_header("x-oss-request-id", "bench")
        self.end_headers()

    def do_GET(self) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
        small = self._small_file(parsed.path)
        if small is not None:
            self.server.requests += 1
            self._serve_small(*small, head=False)
            return
        bucket = self._bucket(parsed.path)
        self.server.requests += 1
        if "location" in query:
            location = (
                f'<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint xmlns="{S3_NS}"/>'
            )
            self._answer(200, location.encode(), head=False)
            return
        s3_style = self.headers.get("Authorization", "").startswith("AWS4-")
        status, body = list_objects_xml(self.server.index, bucket, query, s3_style)
        self._answer(status, body, head=False)

    def do_HEAD(self) -> None:
        small = self._small_file(urllib.parse.urlsplit(self.path).path)
        if small is not None:
            self._serve_small(*small, head=True)
            return
        bucket = self._bucket(urllib.parse.urlsplit(self.path).path)
        self._answer(200 if bucket in self.server.index.buckets else 404, b"", head=True)

    def do_POST(self) -> None:
        """InitiateMultipartUpload (``?uploads``) and CompleteMultipartUpload (``?uploadId=``)."""
        parsed = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)  # the part list: nothing is assembled
        self.server.requests += 1
        sigv4 = self.headers.get("Authorization", "").startswith("AWS4-")
        ns = f' xmlns="{S3_NS}"' if sigv4 else ""
        bucket, key = self._bucket_key(parsed.path)
        bucket, key = escape(bucket), escape(key)
        if "uploads" in query:
            upload_id = uuid.uuid4().hex
            body = (
                f'<?xml version="1.0" encoding="UTF-8"?>\n<InitiateMultipartUploadResult{ns}>'
                f"<Bucket>{bucket}</Bucket><Key>{key}</Key>"
                f"<UploadId>{upload_id}</UploadId></InitiateMultipartUploadResult>"
            )
        elif "uploadId" in query:
            self.server.small.complete(query["uploadId"], *self._bucket_key(parsed.path))
            body = (
                f'<?xml version="1.0" encoding="UTF-8"?>\n<CompleteMultipartUploadResult{ns}>'
                f"<Location>/{key}</Location><Bucket>{bucket}</Bucket><Key>{key}</Key>"
                f'<ETag>"{uuid.uuid4().hex.upper()}-1"</ETag></CompleteMultipartUploadResult>'
            )
        else:
            self._answer(400, b"<Error><Code>InvalidRequest</Code></Error>", head=False)
            return
        self._answer(200, body.encode(), head=False)

    def do_DELETE(self) -> None:
        """DeleteObject and AbortMultipartUpload: only metadata files are kept to remove."""
        self.server.requests += 1
        self.server.small.delete(*self._bucket_key(urllib.parse.urlsplit(self.path).path))
        self._answer(204, b"", head=True)


class SmallFiles:
    """The write port's metadata files, in memory (with their multipart parts), falling back
    to the tree for reads."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._files: dict[tuple[str, str], bytes] = {}
        self._parts: dict[str, dict[int, bytes]] = {}

    def read(self, bucket: str, key: str) -> bytes | None:
        with self._lock:
            kept = self._files.get((bucket, key))
        if kept is not None:
            return kept
        path = self.root / bucket / key
        return path.read_bytes() if path.is_file() else None

    def write(self, bucket: str, key: str, body: bytes) -> None:
        with self._lock:
            self._files[(bucket, key)] = body

    def delete(self, bucket: str, key: str) -> None:
        with self._lock:
            self._files.pop((bucket, key), None)

    def put_part(self, upload_id: str, number: int, body: bytes) -> None:
        with self._lock:
            self._parts.setdefault(upload_id, {})[number] = body

    def complete(self, upload_id: str, bucket: str, key: str) -> None:
        with self._lock:
            parts = self._parts.pop(upload_id, None)
            if parts is not None:  # parts of data files went to nginx and were dropped
                self._files[(bucket, key)] = b"".join(parts[n] for n in sorted(parts))


class _ListServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    index: Index
    small: SmallFiles
    requests: int = 0


class ListResponder:
    """ListObjects over the tree, on 127.0.0.1:port, in a thread of this process."""

    def __init__(self, root: Path) -> None:
        self.server = _ListServer(("127.0.0.1", 0), _ListHandler)
        self.server.index = Index(root)
        self.server.small = SmallFiles(root)
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------------------------
# nginx


def _object_locations(root: Path, crc: bool, delay_s: float | None, named: str) -> str:
    """The `location`s of one server block: bucket-level requests go to the list responder,
    everything else is a static file (with its CRC header)."""
    crc_header = "add_header x-oss-hash-crc64ecma $bench_crc;" if crc else ""
    proxy = "proxy_pass http://bench_lister;"
    if delay_s is None:
        return f"""
        location @list_{named} {{ {proxy} }}
        location / {{
            if ($bench_is_bucket_{named}) {{ {proxy} }}
            {crc_header}
        }}"""
    d = f"{delay_s:.3f}"
    return f"""
        location @list_{named} {{ {proxy} }}
        location @obj_{named} {{ {crc_header} }}
        location / {{
            if ($bench_is_bucket_{named}) {{ echo_sleep {d}; echo_exec @list_{named}; }}
            echo_sleep {d};
            echo_exec @obj_{named};
        }}"""


def _write_server(root: Path, port: int, crc: bool, body_dir: Path) -> str:
    """The write port's server block (path style and virtual-hosted on one port): see the
    module's docstring."""
    crc_header = "add_header x-oss-hash-crc64ecma $bench_crc;" if crc else ""
    proxy = "proxy_pass http://bench_lister;"
    blocks = []
    for name, head, root_dir in (
        ("path", 'default_server reuseport;\n        server_name 127.0.0.1 localhost "";', root),
        ("vhost", ";\n        server_name ~^(?<bucket>[^.]+)\\.;", Path(f"{root}/$bucket")),
    ):
        blocks.append(f"""
    server {{  # writes, {name} style
        listen 127.0.0.1:{port} {head}
        root {root_dir};
        client_max_body_size 0;
        location / {{
            if ($request_method = POST) {{ {proxy} }}
            if ($request_method = DELETE) {{ {proxy} }}
            set $bench_put "";
            if ($request_method = PUT) {{ set $bench_put drop; }}
            if ($http_x_oss_copy_source) {{ set $bench_put copy; }}
            if ($http_x_amz_copy_source) {{ set $bench_put copy; }}
            if ($bench_put = drop) {{ rewrite ^ /_bench_put last; }}
            if ($bench_put = copy) {{ {proxy} }}
            if ($bench_is_bucket_fast_{name}) {{ {proxy} }}
            {crc_header}
        }}
        # DCP's metadata files are small and read back: the responder keeps them
        location ~ "/\\.metadata(\\.tmp)?$" {{ {proxy} }}
        location = /_bench_put {{
            internal;
            client_body_temp_path {body_dir};
            client_body_buffer_size 17m;
            client_body_in_single_buffer on;
            echo_read_request_body;
            add_header ETag '"$request_id"' always;
        }}
    }}""")
    return "".join(blocks)


def nginx_config(
    run_dir: Path,
    root: Path,
    port: int,
    latency_port: int,
    lister_port: int,
    crc_map: Path | None,
    workers: int,
    delay_ms: float,
    write_port: int | None = None,
    body_dir: Path | None = None,
) -> str:
    tmp = run_dir / "tmp"
    crc_block = (
        f'map $uri $bench_crc {{ default ""; include {crc_map}; }}' if crc_map is not None else ""
    )
    blocks = []
    for listen, delay in ((port, None), (latency_port, delay_ms / 1000.0)):
        tag = "fast" if delay is None else "slow"
        blocks.append(f"""
    server {{  # path style: /bucket/key
        listen 127.0.0.1:{listen} default_server reuseport backlog=4096;
        server_name 127.0.0.1 localhost "";
        root {root};
        {_object_locations(root, crc_map is not None, delay, tag + "_path")}
    }}
    server {{  # virtual-hosted style: Host bucket.anything
        listen 127.0.0.1:{listen};
        server_name ~^(?<bucket>[^.]+)\\.;
        root {root}/$bucket;
        {_object_locations(root, crc_map is not None, delay, tag + "_vhost")}
    }}""")
    maps = []
    for tag in ("fast", "slow"):
        # a path naming only a bucket (`/b`, `/b/`) in path style; `/` on a virtual host
        maps.append(f"map $uri $bench_is_bucket_{tag}_path {{ ~^/[^/]+/?$ 1; default 0; }}")
        maps.append(f"map $uri $bench_is_bucket_{tag}_vhost {{ / 1; default 0; }}")
    # run as root, nginx would switch its workers to `nobody`, who cannot read a tree under /root
    user = "user root;" if os.geteuid() == 0 else ""
    return f"""
load_module {ECHO_MODULE};
{user}
worker_processes {workers};
daemon off;
pid {run_dir}/nginx.pid;
error_log {run_dir}/error.log warn;
worker_rlimit_nofile 65536;
events {{ worker_connections 16384; multi_accept on; }}
http {{
    access_log off;
    sendfile on;
    # nginx's default. On (TCP_CORK around sendfile), the tail of a response now and then
    # waited for the client's delayed ACK: wrk -c1 saw a 44 ms maximum latency (stdev 11.8 ms)
    # with it, 9.7 ms (stdev 0.7 ms) without, and such stalls say nothing about a client.
    tcp_nopush off;
    tcp_nodelay on;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    default_type application/octet-stream;
    types {{ }}
    etag on;
    server_tokens off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    map_hash_max_size 1048576;
    map_hash_bucket_size 256;
    {crc_block}
    {chr(10).join("    " + m for m in maps)}
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $http_host;
    upstream bench_lister {{ server 127.0.0.1:{lister_port}; keepalive 8; }}
{"".join(blocks)}
{_write_server(root, write_port, crc_map is not None, body_dir) if write_port and body_dir else ""}
}}
"""


class Nginx:
    """One nginx master (plus `workers` workers) on two loopback ports: fast and latency."""

    def __init__(
        self,
        run_dir: Path,
        root: Path,
        lister_port: int,
        crc_map: Path | None,
        workers: int = 1,
        delay_ms: float = 20.0,
        writes: bool = False,
    ) -> None:
        self.run_dir = run_dir
        self.port = free_port()
        self.latency_port = free_port()
        self.write_port = free_port() if writes else 0
        # bodies over 17 MiB spill here and are dropped: tmpfs, so the disk is never the limit
        self.body_dir = Path(tempfile.mkdtemp(prefix="bench-bodies-", dir="/dev/shm"))
        self.conf = run_dir / "nginx.conf"
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "tmp").mkdir(exist_ok=True)
        self.conf.write_text(
            nginx_config(
                run_dir,
                root,
                self.port,
                self.latency_port,
                lister_port,
                crc_map,
                workers,
                delay_ms,
                self.write_port,
                self.body_dir,
            )
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen(
            [nginx, "-p", str(self.run_dir), "-c", str(self.conf)],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_for_port(self.port)
            wait_for_port(self.latency_port)
            if self.write_port:
                wait_for_port(self.write_port)
        except RuntimeError:
            self.stop()
            log = (self.run_dir / "error.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"nginx did not start:\n{log}") from None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # fast shutdown of master and its workers
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
        shutil.rmtree(self.body_dir, ignore_errors=True)


class Servers:
    """The list responder and nginx, started and stopped together (a context manager)."""

    def __init__(
        self,
        root: Path,
        run_dir: Path,
        crc_map: Path | None,
        workers: int = 1,
        delay_ms: float = 20.0,
        writes: bool = False,
    ) -> None:
        self.root = root
        self.lister = ListResponder(root)
        self.nginx = Nginx(run_dir, root, self.lister.port, crc_map, workers, delay_ms, writes)
        self.delay_ms = delay_ms

    @property
    def port(self) -> int:
        return self.nginx.port

    @property
    def latency_port(self) -> int:
        return self.nginx.latency_port

    @property
    def write_port(self) -> int:
        return self.nginx.write_port

    def __enter__(self) -> Servers:
        self.lister.start()
        try:
            self.nginx.start()
        except BaseException:
            self.lister.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.nginx.stop()
        self.lister.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--root", type=Path, required=True, help="directory of bucket directories")
    p.add_argument("--run-dir", type=Path, default=Path("/tmp/oss-bench-nginx"))
    p.add_argument("--crc-map", type=Path, default=None)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--delay-ms", type=float, default=20.0)
    p.add_argument("--writes", action="store_true", help="also open the write port")
    a = p.parse_args()
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    with Servers(a.root, a.run_dir, a.crc_map, a.workers, a.delay_ms, a.writes) as s:
        writes = f"  writes: http://127.0.0.1:{s.write_port}" if a.writes else ""
        print(
            f"fast: http://127.0.0.1:{s.port}  latency: http://127.0.0.1:{s.latency_port}{writes}"
        )
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
