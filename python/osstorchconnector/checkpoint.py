"""OssCheckpoint: ``torch.save`` straight to OSS, atomically, and ``torch.load`` by range."""

from __future__ import annotations

from ._client import (
    ClientFactory,
    ClientOptions,
    CredentialsProvider,
    RangeFetcher,
    check_options,
)
from ._core import parse_oss_uri, uri_protocol
from .data_object import DataObject
from .exceptions import OssConfigError
from .writer import ObjectWriter


def checkpoint_factory(
    endpoint: str,
    options: ClientOptions,
    where: str,
    local_ok: bool = False,
    protocol: str = "oss",
) -> ClientFactory:
    """A validated client factory for the checkpoint-style classes (endpoint required, unless
    ``local_ok``: an empty one then reads local files, as the official's OssClient does).
    ``protocol``'s client is validated now; the other one, if URIs name it, on first use."""
    if not endpoint and not local_ok and protocol == "oss":
        raise OssConfigError(f"{where}: endpoint must be non-empty")
    check_options(dict(options), where)
    factory = ClientFactory(endpoint, protocol, **options)
    factory.get()  # validate endpoint, region, config and credentials now
    return factory


def open_reader(
    factory: ClientFactory, oss_uri: str, ranges: RangeFetcher, label: str = ""
) -> DataObject:
    """A reader of the current version of ``oss_uri``: HEAD for its size and ETag, then reads
    by range, every one pinned to that ETag."""
    bucket, key = parse_oss_uri(oss_uri)
    protocol = uri_protocol(oss_uri)
    size, etag, _crc = factory.get(protocol).head_object(oss_uri)
    ranges = ranges.for_protocol(protocol)
    return DataObject(key, size, label, b"", bucket, etag=etag, ranges=ranges)


def connect(
    where: str,
    endpoint: str,
    cred_path: str,
    config_path: str,
    cred_provider: CredentialsProvider | None,
    region: str,
    path_style: bool | None,
    local_ok: bool = False,
    protocol: str = "oss",
) -> tuple[ClientFactory, RangeFetcher]:
    """The validated client factory and checkpoint-sized range reader of the classes that
    take the official ``(endpoint, cred_path, config_path, cred_provider, region)``."""
    options = ClientOptions(
        cred_path=cred_path,
        config_path=config_path,
        cred_provider=cred_provider,
        region=region,
        path_style=path_style,
    )
    factory = checkpoint_factory(endpoint, options, where, local_ok, protocol)
    return factory, checkpoint_ranges(factory)


def checkpoint_ranges(factory: ClientFactory) -> RangeFetcher:
    """Range reads sized by ``checkpointConfig``: ``prefetchIoSizeMB`` ranges, up to
    ``prefetchConcurrency`` at once (also the readahead of sequential reads, in ranges)."""
    client = factory.get()
    part, concurrency = client.checkpoint_part_size, client.checkpoint_concurrency
    return RangeFetcher(factory, part, concurrency, readahead=part * concurrency)


class Connected:
    """Base of the classes that take the official ``(endpoint, cred_path, config_path,
    cred_provider, region)``: a validated client, and range reads sized by
    ``checkpointConfig``. ``protocol`` (ours): ``"oss"`` or ``"s3"``, the client checked now;
    URIs of the other scheme work too, their client made (and checked) on first use."""

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
        where = f"{type(self).__name__}()"
        self._factory, self._ranges = connect(
            where,
            endpoint,
            cred_path,
            config_path,
            cred_provider,
            region,
            path_style,
            protocol=protocol,
        )


class OssCheckpoint(Connected):
    """Checkpoints in OSS: :meth:`writer` for ``torch.save``, :meth:`reader` for
    ``torch.load``.

    Unlike the official connector, a writer replaces the object only when it is closed
    cleanly (an exception or Ctrl-C aborts the upload and leaves the old checkpoint), and a
    reader fetches what is read — by range, with readahead for sequential reads — rather
    than the whole object, and needs no userfaultfd.
    """

    def reader(self, oss_uri: str) -> DataObject:
        """A seekable binary file over the object (``torch.load(reader, weights_only=True)``).

        Raises:
            OssNotFoundError: the object does not exist.
            OssObjectChangedError: (on a read) the object was replaced since the reader opened.
        """
        return open_reader(self._factory, oss_uri, self._ranges)

    def writer(self, oss_uri: str) -> ObjectWriter:
        """A write-only binary file whose bytes become the object when it is closed
        (``with cp.writer(uri) as w: torch.save(state_dict, w)``)."""
        return ObjectWriter(self._factory.for_uri(oss_uri).upload(oss_uri), oss_uri)
