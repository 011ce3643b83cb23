"""The S3 server of the integration tests: s3s-fs, an S3 server over a directory (crates.io,
tokio/hyper) that verifies every request's AWS SigV4 when started with --access-key/--secret-key.

`scripts/s3s_fs.sh` builds it once into ~/.cache/osstorchconnector/s3s-fs; scripts/test.sh runs
it before pytest and passes the binary in `S3S_FS`. Without `S3S_FS` the fixture runs the script
itself, so a plain `pytest` works too, and a build that fails fails every test that needs the
server, with the build's output: nothing is skipped.

Fixtures are written and checked with MinIO's client (`S3Server.client`), never with ours.

Quirks of s3s-fs 0.14.1 (pinned by tests/integration/test_s3_server.py):
- `delimiter=` with an empty value is taken as a delimiter, not as none: every key collapses
  into a common prefix one character past the requested prefix. minio's recursive
  `list_objects` sends exactly that, so `S3Server.list_keys` walks with `delimiter=/` instead.
- `encoding-type=url` is echoed (`<EncodingType>url</EncodingType>`) but keys and prefixes come
  back unencoded. A client that URL-decodes them as S3 encodes (minio: `unquote_plus`) turns a
  `+` into a space and `%2B` into `+`; without `encoding-type=url` keys come back intact. A
  client that percent-decodes without `+` → space alters only keys holding a `%XX`.
- Errors: a wrong secret is 403 `SignatureDoesNotMatch` (HEAD: a bare 403), an unknown access
  key 403 `NotSignedUp` (AWS: `InvalidAccessKeyId`), an unsigned request 403 `AccessDenied`, a
  body that does not match its signed `x-amz-content-sha256` 500 `InternalError` (AWS: 400
  `XAmzContentSHA256Mismatch`), a request dated 2 h off 403 `RequestTimeTooSkewed`.
- No checksums (`x-amz-checksum-*`) in answers unless asked for; the ETag is the body's MD5.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from minio import Minio

REGION = "us-east-1"
ACCESS_KEY = "AKIAS3SFSTEST0001"
REPO = Path(__file__).resolve().parent.parent
INSTALL_SCRIPT = REPO / "scripts" / "s3s_fs.sh"
_READY_TIMEOUT_S = 20.0


class S3sFsUnavailable(RuntimeError):
    """s3s-fs could not be found, built or started; the message says why."""


def find_s3s_fs() -> Path:
    """The s3s-fs binary: `S3S_FS`, else what `scripts/s3s_fs.sh` builds (once) and prints."""
    given = os.environ.get("S3S_FS")
    if given:
        path = Path(given)
        if not os.access(path, os.X_OK):
            raise S3sFsUnavailable(f"S3S_FS={given} is not an executable file")
        return path
    done = subprocess.run(
        ["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise S3sFsUnavailable(
            f"could not build s3s-fs with {INSTALL_SCRIPT} (exit {done.returncode}); "
            f"its output:\n{done.stdout[-2000:]}\n{done.stderr[-6000:]}"
        )
    return Path(lines[-1])


@dataclass
class S3Server:
    """A running s3s-fs on 127.0.0.1 that accepts one key pair."""

    endpoint: str  # "http://127.0.0.1:PORT"
    access_key: str
    secret_key: str
    region: str
    root: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def host(self) -> str:
        """`127.0.0.1:PORT`, as minio takes it."""
        return self.endpoint.removeprefix("http://")

    def client(self, access_key: str | None = None, secret_key: str | None = None) -> Minio:
        """A minio client for this server (plain HTTP, path style), with this server's key
        unless told otherwise; empty strings make an anonymous (unsigned) client."""
        return Minio(
            self.host,
            access_key=self.access_key if access_key is None else access_key,
            secret_key=self.secret_key if secret_key is None else secret_key,
            secure=False,
            region=self.region,
        )

    def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every key under `prefix`, sorted, as minio lists them one `/` level at a time and
        without `encoding-type=url` (both around s3s-fs quirks; see the module doc)."""
        client = self.client()
        keys: list[str] = []
        pending = [prefix]
        while pending:
            for obj in client.list_objects(
                bucket, prefix=pending.pop(), use_url_encoding_type=False
            ):
                name = obj.object_name or ""
                if obj.is_dir:
                    pending.append(name)
                else:
                    keys.append(name)
        return sorted(keys)

    def log_text(self) -> str:
        return self.log_path.read_text("utf-8", errors="replace")

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(
                f"s3s-fs exited with {self.process.returncode}; its log:\n{self.log_text()}"
            )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _listening(process: subprocess.Popen[bytes], port: int) -> bool:
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminate, then kill after 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_s3_server(root: Path) -> S3Server:
    """Start s3s-fs over `root` on a free loopback port, with a random secret.

    Raises:
        S3sFsUnavailable: when it cannot be built or does not start listening.
    """
    binary = find_s3s_fs()
    root.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(24)
    # `.stderr.log`: the server's own diagnostics, left out of the suite's secret-leak check.
    log_path = root.parent / f"{root.name}.stderr.log"
    for _ in range(3):  # the port may be taken between the probe and the server's bind
        port = _free_port()
        cmd = [str(binary), "--host", "127.0.0.1", "--port", str(port)]
        # `--opt=value`: a secret may start with "-", which clap would take for a flag
        cmd += [f"--access-key={ACCESS_KEY}", f"--secret-key={secret}", str(root)]
        with open(log_path, "ab") as log:
            process = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        if _listening(process, port):
            return S3Server(
                endpoint=f"http://127.0.0.1:{port}",
                access_key=ACCESS_KEY,
                secret_key=secret,
                region=REGION,
                root=root,
                process=process,
                log_path=log_path,
            )
        stop_process(process)
    raise S3sFsUnavailable(
        f"{binary} did not listen on 127.0.0.1 within {_READY_TIMEOUT_S:.0f} s; its log:\n"
        + log_path.read_text("utf-8", errors="replace")[-6000:]
    )


def stop_s3_server(server: S3Server) -> None:
    """Stop the server; if it had died on its own, fail loudly with its log."""
    died = server.process.poll()
    stop_process(server.process)
    if died is not None:
        raise RuntimeError(f"s3s-fs died (exit {died}); its log:\n{server.log_text()}")
