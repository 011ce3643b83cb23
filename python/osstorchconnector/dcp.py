"""torch.distributed.checkpoint (DCP) on OSS: ``OssDCPFileSystem`` and its storage writer and
reader, drop-in for the official's.

torch's own FileSystemWriter/FileSystemReader do the planning, the per-rank files and the
metadata; this module gives them a file system whose files are objects: each file is written
through the atomic, bounded upload (:class:`ObjectWriter`) and read by range
(:class:`DataObject`). ``.metadata`` is written last, as ``.metadata.tmp`` copied server-side
to ``.metadata``: a copy is atomic, so a save that crashed never has a ``.metadata`` (and is
never taken for complete), and a finished one is complete the moment it has one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Generator
from typing import Any

from torch.distributed.checkpoint.filesystem import (
    FileSystemBase,
    FileSystemReader,
    FileSystemWriter,
)

from ._client import CredentialsProvider
from ._core import parse_oss_uri
from .checkpoint import connect, open_reader
from .exceptions import OssNotFoundError
from .writer import ObjectWriter

_SCHEMES = ("oss://", "s3://")


class OssDCPFileSystem(FileSystemBase):
    """Where DCP checkpoints live, as the official's: a ``FileSystemBase`` over objects (paths
    are ``oss://bucket/prefix`` strings, or ``s3://`` ones on an S3-compatible endpoint) with
    ``writer(path)`` and ``reader(path)`` for ``dcp.save(state_dict, storage_writer=...)`` and
    ``dcp.load(state_dict, storage_reader=...)``. ``protocol`` as for OssCheckpoint."""

    def __init__(
        self,
        endpoint: str,
        cred_path: str = "",
        config_path: str = "",
        cred_provider: CredentialsProvider | None = None,
        region: str = "",
        *,
        path_style: bool | None = None,
        protocol: str = "oss",
    ) -> None:
        self._factory, self._ranges = connect(
            "OssDCPFileSystem()",
            endpoint,
            cred_path,
            config_path,
            cred_provider,
            region,
            path_style,
            protocol=protocol,
        )

    def writer(self, path: str, **kwargs: Any) -> OssStorageWriter:
        """A storage writer of the checkpoint at ``path`` (FileSystemWriter's keywords)."""
        return OssStorageWriter(self, path, **kwargs)

    def reader(self, path: str) -> OssStorageReader:
        """A storage reader of the checkpoint at ``path``."""
        return OssStorageReader(self, path)

    @contextlib.contextmanager
    def create_stream(self, path: str | os.PathLike[str], mode: str) -> Generator[Any, None, None]:
        uri = str(path)
        if "w" in mode:
            with ObjectWriter(self._factory.for_uri(uri).upload(uri), uri) as writer:
                yield writer
        elif "r" in mode:
            with open_reader(self._factory, uri, self._ranges) as reader:
                yield reader
        else:
            raise ValueError(f"create_stream({uri!r}): mode {mode!r} is neither read nor write")

    def concat_path(self, path: str | os.PathLike[str], suffix: str) -> str:
        return f"{str(path).rstrip('/')}/{suffix}"

    def init_path(self, path: str | os.PathLike[str]) -> str:
        uri = str(path)
        if not uri.startswith(_SCHEMES):
            raise ValueError(f"a DCP checkpoint is an oss:// or s3:// URI, not {uri!r}")
        parse_oss_uri(uri)  # names a bad bucket now
        return uri.rstrip("/")

    def rename(self, path: str | os.PathLike[str], new_path: str | os.PathLike[str]) -> None:
        client = self._factory.for_uri(str(path))
        client.copy_object(str(path), str(new_path))
        client.delete_object(str(path))

    def mkdir(self, path: str | os.PathLike[str]) -> None:
        """Nothing to do: prefixes need no creating."""

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: str | os.PathLike[str]) -> bool:
        return str(checkpoint_id).startswith(_SCHEMES)

    def exists(self, path: str | os.PathLike[str]) -> bool:
        try:
            self._factory.for_uri(str(path)).head_object(str(path))
        except OssNotFoundError:
            return False
        return True

    def rm_file(self, path: str | os.PathLike[str]) -> None:
        self._factory.for_uri(str(path)).delete_object(str(path))


class OssStorageWriter(FileSystemWriter):
    """torch's FileSystemWriter writing objects (build it with :meth:`OssDCPFileSystem.writer`).

    Takes FileSystemWriter's keywords (``single_file_per_rank``, ``thread_count``,
    ``per_thread_copy_ahead``, ``overwrite``, ...); ``sync_files`` has no meaning for objects
    (an object exists once its upload completes) and is ignored.
    """

    def __init__(self, files: OssDCPFileSystem, path: str, **kwargs: Any) -> None:
        kwargs.pop("sync_files", None)
        super().__init__(path, sync_files=False, **kwargs)
        # torch annotates `fs` with its local FileSystem but calls only FileSystemBase methods
        self.fs = files  # type: ignore[assignment]
        self.path = files.init_path(path)

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: str | os.PathLike[str]) -> bool:
        return OssDCPFileSystem.validate_checkpoint_id(checkpoint_id)


class OssStorageReader(FileSystemReader):
    """torch's FileSystemReader reading objects by range (build it with
    :meth:`OssDCPFileSystem.reader`)."""

    def __init__(self, files: OssDCPFileSystem, path: str) -> None:
        super().__init__(path)
        self.fs = files  # type: ignore[assignment]  # (see OssStorageWriter)
        self.path = files.init_path(path)

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: str | os.PathLike[str]) -> bool:
        return OssDCPFileSystem.validate_checkpoint_id(checkpoint_id)
