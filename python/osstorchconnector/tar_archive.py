"""``generate_tar_archive``: pack a directory into a tar archive plus the index that
``from_tar`` datasets read, or index an existing archive.

The archive and index are what the official connector writes (see ``_tar_writer`` and
``_tar_index``). Every path may be local or ``oss://``: an archive or index in OSS is written
through the atomic upload (:class:`ObjectWriter`), an OSS source is streamed through the
dataset pipeline in listing order, and an archive in OSS is indexed by reading its headers in
windows of a few MiB (one request per window, not per member).
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
from array import array
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, cast

from ._client import ClientFactory, ClientOptions
from ._core import parse_oss_uri
from ._tar_format import index_blocks
from ._tar_index import encode_index
from ._tar_writer import SourceFile, write_archive
from .checkpoint import checkpoint_factory
from .data_object import DataObject
from .iterable_dataset import streamed_objects
from .writer import ObjectWriter

_REMOTE = ("oss://", "s3://")


def generate_tar_archive(
    endpoint: str,
    cred_path: str,
    config_path: str,
    tar_path: str,
    index_path: str,
    source_path: str,
    index_only: bool = False,
    cred_provider: Any = None,
    region: str = "",
) -> int:
    """Writes a tar archive of every regular file under ``source_path`` and its index, or,
    with ``index_only``, the index of the existing archive ``tar_path``.

    Member names are ``source_path`` joined with each file's path below it, exactly as given
    (``os.path.join``: an absolute source gives names with a leading "/"). Files are visited
    depth first in byte order of their names, so the same tree always gives the same archive;
    the official uses readdir order, which depends on the file system. Symlinks, empty
    directories and special files are left out. Mode, owner and mtime are stored as 0.

    A source in OSS (``oss://bucket/prefix``) gives members named ``/bucket/key``, in listing
    order, as the official names them; archive and index in OSS are replaced atomically (an
    error leaves the old ones). ``endpoint`` and credentials are needed only for OSS paths.

    Differences from the official, on purpose: local paths need no endpoint or credentials; a
    missing ``source_path`` raises ``FileNotFoundError`` and a file ``NotADirectoryError``
    (the official writes an empty archive for both); a corrupt or truncated archive raises
    ``OssFormatError`` where the official may write an index that fails later; the archive
    being written is left out when it lies inside the source; names of about 500 bytes and
    more, and files of 8 GiB and more with long names, are written correctly (see
    ``_tar_writer``); and outputs are written under a temporary name and renamed, so a failure
    leaves no partial file.

    Args:
        endpoint, cred_path, config_path, cred_provider, region: how to reach OSS; unused for
            local paths.
        tar_path: the archive to write, or to index with ``index_only``.
        index_path: the index to write.
        source_path: the directory to archive; ignored with ``index_only``.
        index_only: index ``tar_path`` instead of writing it.

    Returns:
        0, as the official does.

    Raises:
        OssConfigError: a path is an ``oss://`` URI and the endpoint or credentials are invalid.
        OssError: an OSS request failed (``OssNotFoundError`` for a missing archive).
        OssFormatError: with ``index_only``, ``tar_path`` is not a valid tar archive.
        FileNotFoundError, NotADirectoryError: ``source_path`` is missing or not a directory.
        OSError: reading or writing a local file failed.
    """
    paths = [tar_path, index_path] + ([] if index_only else [source_path])
    oss = _Oss(endpoint, cred_path, config_path, cred_provider, region, paths)
    if index_only:
        index = oss.index_archive(tar_path) if _is_oss(tar_path) else index_local_archive(tar_path)
    else:
        with oss.replacing(tar_path) as sink:
            if _is_oss(source_path):
                files = oss.walk(source_path)
            else:
                _check_source(source_path)
                files = walk_local_files(source_path, skip=_own_file(sink))
            blocks = write_archive(sink, files)
        index = encode_index(blocks[:-1], blocks[-1])
    with oss.replacing(index_path) as sink:
        sink.write(index)
    return 0


class _Oss:
    """Store access for the paths that need it; built only when one is an ``oss://`` (or
    ``s3://``) URI; they all speak the protocol of the first."""

    def __init__(
        self,
        endpoint: str,
        cred_path: str,
        config_path: str,
        cred_provider: Any,
        region: str,
        paths: list[str],
    ) -> None:
        self._factory: ClientFactory | None = None
        remote = [p for p in paths if _is_oss(p)]
        if remote:
            options = ClientOptions(
                cred_path=cred_path,
                config_path=config_path,
                cred_provider=cred_provider,
                region=region,
            )
            protocol = "s3" if remote[0].startswith("s3://") else "oss"
            where = "generate_tar_archive"
            self._factory = checkpoint_factory(endpoint, options, where, protocol=protocol)

    def _client(self) -> ClientFactory:
        assert self._factory is not None, "built for oss:// paths"
        return self._factory

    @contextlib.contextmanager
    def replacing(self, path: str) -> Iterator[BinaryIO]:
        """A sink that becomes ``path`` only if the block ends without an exception."""
        if not _is_oss(path):
            with _replacing(path) as sink:
                yield sink
            return
        with ObjectWriter(self._client().get().upload(path), path) as writer:
            yield cast(BinaryIO, writer)

    def walk(self, source_uri: str) -> Iterator[SourceFile]:
        """Objects under the prefix, in listing order, named ``/bucket/key`` as the official
        names them; "directory" placeholders (keys ending in "/") are left out."""
        factory = self._client()
        bucket, _prefix = parse_oss_uri(source_uri)
        stream = factory.get().stream_prefix(source_uri)
        for obj in streamed_objects(factory, stream):
            if obj.key.endswith("/"):
                continue
            yield SourceFile(f"/{bucket}/{obj.key}", obj.size, _opened(obj))

    def index_archive(self, tar_uri: str) -> bytes:
        """The index of an archive in OSS, read one window of headers at a time."""
        factory = self._client()
        bucket, key = parse_oss_uri(tar_uri)
        size, etag, _crc = factory.get().head_object(tar_uri)
        window = _Window(factory, bucket, key, etag, size)
        starts, end = index_blocks(window.read_at, tar_uri, size)
        return encode_index(starts, end)


class _Window:
    """Reads of an object served from a window of ``WINDOW`` bytes fetched by one ranged GET
    (headers of small members lie many to a window), pinned to one version."""

    WINDOW = 4 << 20

    def __init__(self, factory: ClientFactory, bucket: str, key: str, etag: str, size: int):
        self._factory = factory
        self._where = (bucket, key, etag)
        self._size = size
        self._start = 0
        self._data = b""

    def read_at(self, offset: int, size: int) -> bytes:
        start = offset - self._start
        if not (start >= 0 and start + size <= len(self._data)):
            bucket, key, etag = self._where
            end = min(self._size, offset + max(size, self.WINDOW))
            if offset >= end:
                return b""
            body = self._factory.get().get_range(bucket, key, offset, end, if_match=etag or None)
            self._start, self._data = offset, body.read()
            start = 0
        return self._data[start : start + size]


def _opened(obj: DataObject) -> Callable[[], contextlib.AbstractContextManager[BinaryIO]]:
    return lambda: contextlib.nullcontext(cast(BinaryIO, obj))


def _is_oss(path: str) -> bool:
    return path.startswith(_REMOTE)


def index_local_archive(tar_path: str) -> bytes:
    """The index file of the archive at ``tar_path``."""
    with open(tar_path, "rb") as archive:
        fd = archive.fileno()

        def read_at(offset: int, size: int) -> bytes:
            return os.pread(fd, size, offset)

        starts, end = index_blocks(read_at, tar_path, os.fstat(fd).st_size)
    return encode_index(starts, end)


def write_local_archive(tar_path: str, source_path: str) -> array[int]:
    """Archives ``source_path`` into ``tar_path``; returns the blocks for ``encode_index``."""
    _check_source(source_path)
    with _replacing(tar_path) as sink:
        return write_archive(sink, walk_local_files(source_path, skip=_own_file(sink)))


def _check_source(source_path: str) -> None:
    if not os.path.exists(source_path):
        raise FileNotFoundError(errno.ENOENT, "no such source directory", source_path)
    if not os.path.isdir(source_path):
        raise NotADirectoryError(errno.ENOTDIR, "the source is not a directory", source_path)


def _own_file(sink: BinaryIO) -> set[tuple[int, int]]:
    """The archive being written, when it is a local file (so a source around it skips it)."""
    try:
        own = os.fstat(sink.fileno())
    except (OSError, io.UnsupportedOperation):
        return set()
    return {(own.st_dev, own.st_ino)}


def walk_local_files(
    source_path: str, skip: set[tuple[int, int]] | None = None
) -> Iterator[SourceFile]:
    """Regular files under ``source_path``, depth first, each directory's entries sorted by
    the bytes of their names; directories are entered where they sort. Symlinks are not
    followed and, like FIFOs, sockets and devices, not archived.

    Args:
        source_path: the directory; member names are ``os.path.join(source_path, relative)``.
        skip: ``(st_dev, st_ino)`` of files to leave out (the archive being written, when it
            lies inside the source).
    """
    skip = skip or set()
    with os.scandir(source_path) as scan:
        entries = sorted(scan, key=lambda entry: os.fsencode(entry.name))
    for entry in entries:
        name = os.path.join(source_path, entry.name)
        if entry.is_dir(follow_symlinks=False):
            yield from walk_local_files(name, skip)
        elif entry.is_file(follow_symlinks=False):
            info = entry.stat(follow_symlinks=False)
            if (info.st_dev, info.st_ino) not in skip:
                yield SourceFile(name, info.st_size, _opener(name))


def _opener(path: str) -> Callable[[], BinaryIO]:
    return lambda: open(path, "rb")


@contextlib.contextmanager
def _replacing(path: str) -> Iterator[BinaryIO]:
    """A file that replaces ``path`` when the block ends without an exception; on an
    exception it is removed and ``path`` is left as it was."""
    partial = f"{path}.partial-{os.getpid()}"
    try:
        with open(partial, "wb") as sink:
            yield sink
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(partial)
        raise
