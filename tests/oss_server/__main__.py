"""`python -m oss_server --root DIR --port 0 --region cn-hangzhou --key AK:SK[:TOKEN] ...`

Prints `READY http://127.0.0.1:<port>` on stdout once listening; everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .server import OssHTTPServer, ServerConfig
from .signature import AccessKey


def _parse_key(value: str) -> AccessKey:
    parts = value.split(":", 2)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise argparse.ArgumentTypeError("a key is AK:SK or AK:SK:TOKEN")
    return AccessKey(parts[0], parts[1], parts[2] if len(parts) == 3 and parts[2] else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="oss_server", description=__doc__)
    parser.add_argument("--root", type=Path, required=True, help="directory for object data")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--region", required=True, help="the only region signatures may use")
    parser.add_argument(
        "--key",
        type=_parse_key,
        action="append",
        default=[],
        metavar="AK:SK[:TOKEN]",
        help="an accepted key; with TOKEN, requests must send x-oss-security-token: TOKEN",
    )
    parser.add_argument(
        "--vhost-suffix",
        default="",
        help="Host names <bucket>.<suffix> address a bucket virtual-hosted style",
    )
    parser.add_argument("--delay-ms", type=float, default=0.0, help="first-byte delay per request")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)

    config = ServerConfig(
        root=args.root,
        region=args.region,
        keys=args.key,
        port=args.port,
        vhost_suffix=args.vhost_suffix,
        delay_ms=args.delay_ms,
        verbose=args.verbose,
    )
    server = OssHTTPServer(config)
    print(f"READY {server.url}", flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
