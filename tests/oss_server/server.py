"""Server assembly: shared state plus a threading HTTP server that never blocks on accept."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path

from .faults import FaultInjector
from .handler import OssRequestHandler
from .multipart import Uploads
from .signature import AccessKey, KeyTable, Verifier
from .stats import Stats
from .store import Store


@dataclass
class ServerConfig:
    root: Path
    region: str
    keys: list[AccessKey]
    port: int = 0
    host: str = "127.0.0.1"
    vhost_suffix: str = ""
    delay_ms: float = 0.0
    verbose: bool = False


@dataclass
class ServerState:
    """Everything handlers share; each part does its own locking."""

    store: Store
    uploads: Uploads
    keys: KeyTable
    region: str
    vhost_suffix: str
    verbose: bool
    faults: FaultInjector
    stats: Stats = field(default_factory=Stats)
    # Added to the server's clock for the request-time check: lets tests skew the server's
    # idea of "now" without touching the machine's clock.
    clock_offset_s: float = 0.0
    # Set when the server closes: stalled answers give up instead of outliving it.
    stopping: threading.Event = field(default_factory=threading.Event)
    verifier: Verifier = field(init=False)

    def __post_init__(self) -> None:
        self.verifier = Verifier(self.region, self.keys, self.now)

    def now(self) -> float:
        return time.time() + self.clock_offset_s


class OssHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 refuses connections when a client opens its 64-connection pool
    # at once.
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(self, config: ServerConfig) -> None:
        store = Store(config.root)
        self.state = ServerState(
            store=store,
            uploads=Uploads(config.root, store),
            keys=KeyTable(config.keys),
            region=config.region,
            vhost_suffix=config.vhost_suffix.lower(),
            verbose=config.verbose,
            faults=FaultInjector(config.delay_ms / 1000),
        )
        super().__init__((config.host, config.port), OssRequestHandler)

    def server_close(self) -> None:
        self.state.stopping.set()
        super().server_close()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"
