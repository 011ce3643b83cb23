"""OssClient: object operations with the official connector's signatures."""

from __future__ import annotations

from collections.abc import Iterator

from ._client import CredentialsProvider
from ._core import parse_oss_uri
from .checkpoint import connect, open_reader
from .data_object import DataObject
from .writer import ObjectWriter


class OssClient:
    """Reads, writes, lists, removes and renames objects.

    Keys are keys inside the bucket (``a/b.bin``), as everywhere in this package; the
    official connector's objects carry ``/bucket/key``. ``uuid``, ``id`` and ``total`` are
    accepted for compatibility and unused: every process builds its own client. An empty
    ``endpoint`` reads local files (``/bucket/key``), as the official's does; writes then fail.
    ``protocol="s3"`` (ours) speaks S3 to an S3-compatible endpoint instead of OSS.
    """

    def __init__(
        self,
        endpoint: str,
        cred_path: str = "",
        config_path: str = "",
        uuid: str = "",
        id: int = 0,
        total: int = 1,
        cred_provider: CredentialsProvider | None = None,
        region: str = "",
        *,
        path_style: bool | None = None,
        protocol: str = "oss",
    ) -> None:
        del uuid, id, total
        self._scheme = f"{protocol}://"
        self._factory, self._ranges = connect(
            "OssClient()",
            endpoint,
            cred_path,
            config_path,
            cred_provider,
            region,
            path_style,
            local_ok=True,
            protocol=protocol,
        )

    def _uri(self, bucket: str, key: str) -> str:
        uri = f"{self._scheme}{bucket}/{key}"
        parse_oss_uri(uri)  # names a bad bucket or key now
        return uri

    def get_object(
        self, bucket: str, key: str, size: int = 0, type: int = 0, label: str = ""
    ) -> DataObject:
        """A seekable binary file over the object, read by range (``size`` and ``type`` are
        accepted for compatibility: the size and version come from a HEAD request).

        Raises:
            OssNotFoundError: the object does not exist.
        """
        del size, type
        return open_reader(self._factory, self._uri(bucket, key), self._ranges, label)

    def put_object(self, bucket: str, key: str) -> ObjectWriter:
        """A writer whose bytes become the object when it is closed (see ObjectWriter)."""
        uri = self._uri(bucket, key)
        return ObjectWriter(self._factory.get().upload(uri), uri)

    def head_object(self, bucket: str, key: str) -> DataObject:
        """The object's key and size (readable too).

        Raises:
            OssNotFoundError: the object does not exist.
        """
        return open_reader(self._factory, self._uri(bucket, key), self._ranges)

    def list_objects(self, bucket: str, prefix: str = "") -> Iterator[DataObject]:
        """Every object whose key starts with ``prefix``, in key order, listed page by page
        as the iterator advances; each is readable by range."""
        client = self._factory.get()
        token: str | None = None
        while True:
            items, token = client.list_page(bucket, prefix, token)
            for key, size, etag in items:
                yield DataObject(key, size, "", b"", bucket, etag=etag, ranges=self._ranges)
            if token is None:
                return

    def remove_object(self, bucket: str, key: str) -> None:
        """Deletes the object; a missing one is not an error."""
        self._factory.get().delete_object(self._uri(bucket, key))

    def rename_object(self, bucket: str, key: str, new_bucket: str, new_key: str) -> None:
        """Copies the object to ``new_bucket/new_key`` on the server, then deletes it."""
        source, target = self._uri(bucket, key), self._uri(new_bucket, new_key)
        client = self._factory.get()
        client.copy_object(source, target)
        client.delete_object(source)
