"""``generate_tar_archive``: pack a directory into a tar archive plus the index that
``from_tar`` datasets read, or index an existing archive.

The archive and index are what the official connector writes (see ``_tar_writer`` and
``_tar_index``). Only local paths are handled so far; the writer takes any binary sink and the
indexer any ``read_at`` callable, so OSS sources and sinks plug in without touching the formats.
"""

from __future__ import annotations

import contextlib
import errno
import os
from array import array
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from ._tar_format import index_blocks
from ._tar_index import encode_index
from ._tar_writer import SourceFile, write_archive

_OSS_SCHEME = "oss://"


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
        NotImplementedError: a path is an ``oss://`` URI.
        OssFormatError: with ``index_only``, ``tar_path`` is not a valid tar archive.
        FileNotFoundError, NotADirectoryError: ``source_path`` is missing or not a directory.
        OSError: reading or writing a local file failed.
    """
    del endpoint, cred_path, config_path, cred_provider, region  # for oss:// paths, later
    paths = {"tar_path": tar_path, "index_path": index_path}
    if not index_only:
        paths["source_path"] = source_path
    for what, path in paths.items():
        if path.startswith(_OSS_SCHEME):
            raise NotImplementedError(
                f"generate_tar_archive: {what} {path!r}: oss:// paths are not supported yet, "
                "only local ones"
            )
    if index_only:
        index = index_local_archive(tar_path)
    else:
        blocks = write_local_archive(tar_path, source_path)
        index = encode_index(blocks[:-1], blocks[-1])
    with _replacing(index_path) as sink:
        sink.write(index)
    return 0


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
    if not os.path.exists(source_path):
        raise FileNotFoundError(errno.ENOENT, "no such source directory", source_path)
    if not os.path.isdir(source_path):
        raise NotADirectoryError(errno.ENOTDIR, "the source is not a directory", source_path)
    with _replacing(tar_path) as sink:
        own = os.fstat(sink.fileno())
        files = walk_local_files(source_path, skip={(own.st_dev, own.st_ino)})
        return write_archive(sink, files)


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
