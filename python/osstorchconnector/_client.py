"""One native client per process.

DataLoader workers fork from the process that built the dataset; a client's connections and
runtime threads must not be shared with them, so the client is rebuilt whenever the process id
changes, and only its constructor arguments are pickled.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING, Any, Protocol, TypedDict

from ._core import Body, Client, reset_log_cache, uri_protocol

if TYPE_CHECKING:
    from typing_extensions import Buffer, Unpack


class Credentials(Protocol):
    """What :meth:`CredentialsProvider.get_credentials` returns (the oss2 / alibabacloud
    shape)."""

    @property
    def access_key_id(self) -> str: ...
    @property
    def access_key_secret(self) -> str: ...
    @property
    def security_token(self) -> str | None: ...


class CredentialsProvider(Protocol):
    """Anything with ``get_credentials()``: oss2's and alibabacloud's providers, or your own.
    Called whenever credentials are needed again (on expiry, or when the server says so)."""

    def get_credentials(self) -> Credentials: ...


class ClientOptions(TypedDict, total=False):
    """How a dataset (or any other class of this package) reaches the store, besides the
    endpoint: every factory takes these keywords."""

    cred_path: str
    """JSON credentials file; empty: provider, environment, then the default file."""
    config_path: str
    """Connector config file; empty: ``/etc/oss-connector/config.json`` when it exists."""
    cred_provider: CredentialsProvider | None
    """Object with ``get_credentials()``, tried before every other source."""
    region: str
    """Signing region; empty: ``OSS_REGION`` (s3://: ``AWS_REGION``, ``AWS_DEFAULT_REGION``),
    then inferred from the endpoint (s3://: else ``us-east-1``)."""
    path_style: bool | None
    """Force path-style (True) or virtual-hosted (False) addressing."""


def check_options(options: dict[str, Any], where: str) -> None:
    """Raises ``TypeError`` naming any keyword that is not a :class:`ClientOptions` key."""
    unknown = sorted(set(options) - set(ClientOptions.__annotations__))
    if unknown:
        known = ", ".join(sorted(ClientOptions.__annotations__))
        raise TypeError(f"{where} got unexpected keyword argument(s) {unknown}; known: {known}")


log = logging.getLogger("osstorchconnector")

# logLevel of the config file → logging level.
_LEVELS = {0: logging.DEBUG, 1: logging.INFO, 2: logging.WARNING, 3: logging.ERROR}
_log_files: dict[str, logging.Handler] = {}


def _configure_logging(client: Client) -> None:
    """Applies the config file's logLevel and logPath to the ``osstorchconnector`` logger."""
    if not client.config_path:
        return  # no config file: leave the application's logging alone
    log.setLevel(_LEVELS.get(client.log_level, logging.INFO))
    path = client.log_path
    if path and path not in _log_files:
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
        )
        log.addHandler(handler)
        _log_files[path] = handler
    reset_log_cache()


class ClientFactory:
    """Builds the :class:`Client` of the calling process from stored arguments: one per
    protocol (``"oss"`` for ``oss://`` URIs, ``"s3"`` for ``s3://``), the default one being
    the protocol of the URIs the owner was built with."""

    def __init__(
        self, endpoint: str, protocol: str = "oss", **options: Unpack[ClientOptions]
    ) -> None:
        self._endpoint = endpoint
        self.protocol = protocol
        self._options = options
        self._lock = threading.Lock()
        self._clients: dict[str, Client] = {}
        self._pid = -1

    def get(self, protocol: str | None = None) -> Client:
        """The client of the calling process for ``protocol`` (default: the factory's),
        built on first use."""
        protocol = protocol or self.protocol
        client = self._clients.get(protocol)
        if client is not None and self._pid == os.getpid():
            return client
        with self._lock:
            if self._pid != os.getpid():
                self._clients = {}  # a forked child: build its own
                self._pid = os.getpid()
            client = self._clients.get(protocol)
            if client is None:
                client = Client(self._endpoint, protocol=protocol, **self._options)
                _configure_logging(client)
                for warning in client.config_warnings:
                    log.warning("config file %s: %s", client.config_path, warning)
                self._clients[protocol] = client
            return client

    def for_uri(self, uri: str) -> Client:
        """The client for ``uri``'s protocol (``oss://`` or ``s3://``).

        Raises:
            OssConfigError: the URI is malformed.
        """
        return self.get(uri_protocol(uri))

    def __getstate__(self) -> dict[str, Any]:
        return {"endpoint": self._endpoint, "protocol": self.protocol, "options": self._options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["endpoint"], state.get("protocol", "oss"), **state["options"]
        )


class RangeFetcher:
    """Reads byte ranges through a factory's client, pinned to an ETag; picklable, so copied
    objects can be read in other processes.

    ``part_size`` and ``concurrency`` default to the dataset's (``prefetchUnitMB``,
    ``prefetchConcurrency``); checkpoint readers pass ``checkpointConfig``'s.
    """

    def __init__(
        self,
        factory: ClientFactory,
        part_size: int = 0,
        concurrency: int = 0,
        readahead: int = 0,
        protocol: str | None = None,
    ) -> None:
        self._factory = factory
        self.protocol = protocol or factory.protocol
        client = factory.get(self.protocol)
        self.part_size = part_size or client.part_size
        self._concurrency = concurrency or None
        self.readahead = readahead or 4 * self.part_size

    def for_protocol(self, protocol: str) -> RangeFetcher:
        """The same reads through the client of ``protocol`` (``"oss"`` or ``"s3"``)."""
        if protocol == self.protocol:
            return self
        return RangeFetcher(
            self._factory, self.part_size, self._concurrency or 0, self.readahead, protocol
        )

    def __call__(self, bucket: str, key: str, start: int, end: int, etag: str) -> Body:
        client = self._factory.get(self.protocol)
        return client.get_range(bucket, key, start, end, if_match=etag or None)

    def read_into(self, bucket: str, key: str, start: int, buffer: Buffer, etag: str) -> None:
        self._factory.get(self.protocol).read_span_into(
            bucket,
            key,
            start,
            buffer,
            if_match=etag or None,
            part_size=self.part_size,
            concurrency=self._concurrency,
        )
