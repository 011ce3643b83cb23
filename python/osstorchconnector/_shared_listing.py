"""One listing of a prefix per pass, shared by the DataLoader workers of a process.

Listing is sequential (each page needs the previous page's continuation token), so the
workers of a rank cannot split it among themselves; listing in every worker would send the
same LIST requests ``num_workers`` times. Instead the first worker to start a pass lists into
a spill file, and every worker (that one included) reads the file as it grows and takes its
share. Nobody waits for the whole listing: a worker streams its first objects as soon as the
first page is in the file (the lister's own worker is woken by each page it writes; the others
look again within a few ms).

The file, ``<TMPDIR>/osstorchconnector-listing-<token>-<pass>``, is private to the user (mode
0600) and holds about 45 bytes per key; a worker's memory holds one page at a time, so a
10 M-key prefix costs the workers nothing but the file. Its blocks, each written whole by one
``write``::

    P <body bytes> <entries>\\n <continuation token>\\n (<size>\\t<escaped key>\\n)*
    E\\n                                   the listing is complete
    X <bytes>\\n <json {type, message}>    the listing failed: every worker raises it

The lister holds an exclusive ``flock`` on the file while it lists. A reader that finds no
new block and can take that lock knows the lister is gone (its worker exited or was killed):
it takes over from the last page's continuation token.

Passes are told apart by what all workers of one DataLoader iterator share: the DataLoader's
base seed (new for each iterator), the number of passes this worker process has made (for
persistent workers) and the dataset's epoch. The token is drawn once, in the process that
built the dataset, which removes its files when the dataset is collected or at exit.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import re
import tempfile
import threading
import uuid
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from . import exceptions
from ._core import Client
from ._torch import get_worker_info

_PREFIX = "osstorchconnector-listing-"
_ESCAPED = re.compile(rb"\\(.)")
_WAIT_FIRST_S = 0.001
# A worker of another process learns of a new page only by looking; a page it waits for is
# what its next GETs need, so it looks often (a failed look is a seek and a read).
_WAIT_MAX_S = 0.004


class _Written:
    """Wakes this process's readers when one of its listers has written a block: the worker
    that lists also reads, and polling cost it up to half its listing time again."""

    def __init__(self) -> None:
        self.blocks = 0
        self.condition = threading.Condition()

    def add(self) -> None:
        with self.condition:
            self.blocks += 1
            self.condition.notify_all()

    def wait(self, seen: int, timeout: float) -> None:
        with self.condition:
            self.condition.wait_for(lambda: self.blocks != seen, timeout)


_written = _Written()


def _renew_written() -> None:
    global _written  # a lister thread of the parent may have held its lock at the fork
    _written = _Written()


os.register_at_fork(after_in_child=_renew_written)


@dataclass(frozen=True)
class _Page:
    """A listing page as read back: the token that follows it and its entry lines."""

    token: bytes
    lines: list[bytes]


class SharedListing:
    """Where a dataset's workers share their listings; pickles to the workers by value."""

    def __init__(self) -> None:
        self.directory = tempfile.gettempdir()
        self.token = uuid.uuid4().hex
        self.passes = 0  # passes made by this process
        weakref.finalize(self, _remove_files, self.directory, self.token, os.getpid())

    def __getstate__(self) -> dict[str, Any]:
        return {"directory": self.directory, "token": self.token, "passes": 0}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def entries(
        self, client: Client, bucket: str, prefix: str, epoch: int, first: int, step: int
    ) -> Iterator[tuple[str, str, int]]:
        """``(uri, "", size)`` of listed objects ``first``, ``first + step``, ... of this
        pass's listing of ``oss://bucket/prefix``, as the listing grows."""
        info = get_worker_info()
        base_seed = 0 if info is None else int(info.seed) - int(info.id)
        self.passes += 1
        name = f"{_PREFIX}{self.token}-{base_seed}-{self.passes}-{epoch}"
        path = os.path.join(self.directory, name)
        return _read_share(client, bucket, prefix, path, first, step)


def _remove_files(directory: str, token: str, owner: int) -> None:
    if os.getpid() != owner:  # a forked worker collecting its copy: the files are not its
        return
    for path in glob.glob(os.path.join(directory, f"{_PREFIX}{token}-*")):
        with contextlib.suppress(OSError):
            os.unlink(path)


def _read_share(
    client: Client, bucket: str, prefix: str, path: str, first: int, step: int
) -> Iterator[tuple[str, str, int]]:
    lister = _elect(path)
    if lister is not None:
        _start_lister(client, bucket, prefix, lister, None, path)
    where = f"{client.protocol}://{bucket}/"
    position = 0  # of the next page's first entry in the listing
    with open(path, "rb") as reader:
        for page in _pages(client, bucket, prefix, reader, path):
            into = first - position  # where this share starts, relative to the page
            for line in page.lines[into if into >= 0 else into % step :: step]:
                size, _, key = line.partition(b"\t")
                if b"\\" in key:
                    key = _ESCAPED.sub(_unescape, key)
                yield where + key.decode(), "", int(size)
            position += len(page.lines)


def _unescape(match: re.Match[bytes]) -> bytes:
    return b"\n" if match.group(1) == b"n" else match.group(1)


def _elect(path: str) -> int | None:
    """The file's descriptor, locked, when this caller is to list; None when another is."""
    if os.path.exists(path):
        return None
    own = f"{path}.{os.getpid()}.{threading.get_ident()}"
    fd = os.open(own, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)  # before the file has its name: no reader sees it unlocked
    try:
        os.link(own, path)
    except FileExistsError:
        os.close(fd)
        return None
    finally:
        os.unlink(own)
    _remove_earlier_passes(path)
    return fd


def _remove_earlier_passes(path: str) -> None:
    # Every worker of this process's dataset has finished the earlier passes (a DataLoader
    # starts a pass only once the last one is over); a reader still holding one open keeps it.
    directory, name = os.path.split(path)
    token = name[len(_PREFIX) :].split("-", 1)[0]
    for other in glob.glob(os.path.join(directory, f"{_PREFIX}{token}-*")):
        if other != path and "." not in os.path.basename(other):  # not an election's file
            with contextlib.suppress(OSError):
                os.unlink(other)


def _start_lister(
    client: Client, bucket: str, prefix: str, fd: int, token: str | None, path: str
) -> None:
    thread = threading.Thread(
        target=_list_into,
        args=(client, bucket, prefix, fd, token),
        name=f"osstorchconnector listing {os.path.basename(path)}",
        daemon=True,
    )
    thread.start()


def _list_into(client: Client, bucket: str, prefix: str, fd: int, token: str | None) -> None:
    """Appends the listing to the file from ``token`` on, then releases it."""
    try:
        while True:
            items, token = client.list_page(bucket, prefix, token)
            os.write(fd, _page_block(items, token))
            if token is None:
                os.write(fd, b"E\n")
                return
            _written.add()
    except Exception as e:
        kind = type(e).__name__ if isinstance(e, exceptions.OssError) else "OssError"
        body = json.dumps({"type": kind, "message": str(e)}).encode()
        os.write(fd, b"X %d\n" % len(body) + body)
    finally:
        os.close(fd)  # releases the lock
        _written.add()


def _page_block(items: list[tuple[str, int, str]], token: str | None) -> bytes:
    lines = [_escape((token or "").encode())]
    lines.extend(b"%d\t%s" % (size, _escape(key.encode())) for key, size, _ in items)
    body = b"\n".join(lines) + b"\n"
    return b"P %d %d\n" % (len(body), len(items)) + body


def _escape(raw: bytes) -> bytes:
    if b"\\" in raw or b"\n" in raw:
        raw = raw.replace(b"\\", b"\\\\").replace(b"\n", b"\\n")
    return raw


def _pages(client: Client, bucket: str, prefix: str, reader: Any, path: str) -> Iterator[_Page]:
    """The file's pages in order, waiting for the lister (or taking its place)."""
    offset = 0  # of the next block
    token: bytes | None = None  # after the last page read; None before the first
    wait = _WAIT_FIRST_S
    while True:
        seen = _written.blocks
        reader.seek(offset)
        head = reader.readline()
        block = _block(head, reader)
        if block is None:  # not (wholly) written yet
            if _take_over(client, bucket, prefix, path, offset, token):
                continue
            _written.wait(seen, wait)
            wait = min(wait * 2, _WAIT_MAX_S)
            continue
        wait = _WAIT_FIRST_S
        kind, body = block
        offset += len(head) + len(body)
        if kind == b"E":
            return
        if kind == b"X":
            raise _listing_error(body, bucket, prefix)
        lines = body.split(b"\n")
        token = _ESCAPED.sub(_unescape, lines[0])
        yield _Page(token, lines[1:-1])


def _block(head: bytes, reader: Any) -> tuple[bytes, bytes] | None:
    """``(kind, body)`` of a complete block starting with ``head``, else None."""
    if not head.endswith(b"\n"):
        return None
    fields = head.split()
    if fields[0] == b"E":
        return b"E", b""
    body = reader.read(int(fields[1]))
    if len(body) < int(fields[1]):
        return None
    return fields[0], body


def _take_over(
    client: Client, bucket: str, prefix: str, path: str, offset: int, token: bytes | None
) -> bool:
    """Whether this caller found the lister gone and now lists in its place."""
    fd = os.open(path, os.O_WRONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # the lister is at work
        os.close(fd)
        return False
    with open(path, "rb") as check:  # finished between our read and our lock?
        check.seek(offset)
        if _block(check.readline(), check) is not None:
            os.close(fd)
            return True
    os.truncate(path, offset)  # a block its lister died writing
    os.lseek(fd, offset, os.SEEK_SET)
    if token == b"":  # the last page was written, its end marker was not
        os.write(fd, b"E\n")
        os.close(fd)
        return True
    resume = None if token is None else token.decode()
    _start_lister(client, bucket, prefix, fd, resume, path)
    return True


def _listing_error(body: bytes, bucket: str, prefix: str) -> exceptions.OssError:
    fields = json.loads(body)
    kind = getattr(exceptions, str(fields.get("type")), exceptions.OssError)
    if not (isinstance(kind, type) and issubclass(kind, exceptions.OssError)):
        kind = exceptions.OssError
    message = f"{fields.get('message')} (listing {bucket}/{prefix}, made by another worker)"
    return kind(message, bucket=bucket)
