"""A local OSS-protocol server for tests: real V4 signature checks, OSS XML, Range, CRC-64.

Run it as `python -m oss_server --help` (with `tests/` as the working directory or on sys.path).
The helpers exported here let tests compute what the server will serve.
"""

from .crc64 import crc64, crc64_combine, crc64_update, crc64_update_pure
from .generator import BLOCK_SIZE, generated_block, generated_bytes, iter_generated

__all__ = [
    "BLOCK_SIZE",
    "crc64",
    "crc64_combine",
    "crc64_update",
    "crc64_update_pure",
    "generated_block",
    "generated_bytes",
    "iter_generated",
]
