"""An fsspec file system for ``oss://`` on this package's client: what lets
``torch.distributed.checkpoint.save(state, checkpoint_id="oss://bucket/ckpt")`` (and ``load``)
work after ``import osstorchconnector``, through torch's fsspec storage.

Registered for the ``oss`` protocol when the package is imported, unless ``ossfs`` (fsspec's
usual ``oss`` implementation) is installed. Configuration comes from the environment, as
nothing else reaches it through ``checkpoint_id``: ``OSS_ENDPOINT`` (required), ``OSS_REGION``,
``OSS_ACCESS_KEY_ID`` / ``OSS_ACCESS_KEY_SECRET`` / ``OSS_SESSION_TOKEN`` (or the other
credential sources, see README), ``OSS_CONNECTOR_CONFIG`` (a config file path).
Files are written atomically through :class:`ObjectWriter` and read by range.
"""

from __future__ import annotations

import os
from typing import Any

from fsspec import AbstractFileSystem  # type: ignore[import-untyped]

from .checkpoint import connect, open_reader
from .exceptions import OssConfigError, OssNotFoundError
from .writer import ObjectWriter


class OssFileSystem(AbstractFileSystem):  # type: ignore[misc]
    """fsspec's view of OSS: paths are ``bucket/key`` (``oss://`` stripped)."""

    protocol = "oss"
    root_marker = ""
    # fsspec would reuse one instance per set of arguments, but ours is configured from the
    # environment, which may change between calls: build afresh (cheap, nothing connects)
    cachable = False

    def __init__(self, *args: Any, **storage_options: Any) -> None:
        super().__init__(*args, **storage_options)
        endpoint = storage_options.get("endpoint") or os.environ.get("OSS_ENDPOINT", "")
        if not endpoint:
            raise OssConfigError(
                "oss:// through fsspec (e.g. dcp.save(checkpoint_id='oss://...')) needs the "
                "endpoint: set OSS_ENDPOINT"
            )
        self._factory, self._ranges = connect(
            "fsspec oss://",
            endpoint,
            storage_options.get("cred_path", ""),
            storage_options.get("config_path") or os.environ.get("OSS_CONNECTOR_CONFIG", ""),
            storage_options.get("cred_provider"),
            storage_options.get("region", ""),
            storage_options.get("path_style"),
        )

    @staticmethod
    def _uri(path: str) -> str:
        return "oss://" + path.removeprefix("oss://").lstrip("/")

    def _open(self, path: str, mode: str = "rb", **_kwargs: Any) -> Any:
        uri = self._uri(path)
        if "w" in mode:
            return ObjectWriter(self._factory.get().upload(uri), uri)
        if "r" in mode:
            return open_reader(self._factory, uri, self._ranges)
        raise ValueError(f"{uri}: mode {mode!r} is not supported (read or write only)")

    def info(self, path: str, **_kwargs: Any) -> dict[str, Any]:
        uri = self._uri(path)
        name = uri.removeprefix("oss://")
        try:
            size, _etag, _crc = self._factory.get().head_object(uri)
        except OssNotFoundError:
            if self.ls(name, detail=False):
                return {"name": name.rstrip("/"), "size": 0, "type": "directory"}
            raise FileNotFoundError(uri) from None
        return {"name": name, "size": size, "type": "file"}

    def ls(self, path: str, detail: bool = True, **_kwargs: Any) -> list[Any]:
        """Objects and "directories" right under ``path``."""
        name = self._uri(path).removeprefix("oss://").rstrip("/")
        bucket, _, prefix = name.partition("/")
        prefix = f"{prefix}/" if prefix else ""
        client = self._factory.get()
        entries: dict[str, dict[str, Any]] = {}
        token: str | None = None
        while True:
            page, token = client.list_page(bucket, prefix, token)
            for key, size, _etag in page:
                first, sep, _rest = key[len(prefix) :].partition("/")
                full = f"{bucket}/{prefix}{first}"
                kind = "directory" if sep else "file"
                entries.setdefault(full, {"name": full, "size": 0 if sep else size, "type": kind})
            if token is None:
                break
        return list(entries.values()) if detail else sorted(entries)

    def cp_file(self, path1: str, path2: str, **_kwargs: Any) -> None:
        self._factory.get().copy_object(self._uri(path1), self._uri(path2))

    def _rm(self, path: str) -> None:
        self._factory.get().delete_object(self._uri(path))

    def rm_file(self, path: str) -> None:
        self._rm(path)

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        for p in [path] if isinstance(path, str) else path:
            self._rm(p)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        """Nothing to do: prefixes need no creating."""

    def mkdir(self, path: str, create_parents: bool = True, **_kwargs: Any) -> None:
        """Nothing to do: prefixes need no creating."""


def register() -> None:
    """Makes fsspec (and so torch's DCP) use this file system for ``oss://``, unless ossfs is
    installed (then its users keep it)."""
    import importlib.util

    import fsspec

    if importlib.util.find_spec("ossfs") is None:
        fsspec.register_implementation("oss", OssFileSystem, clobber=True)
