"""Deterministic pseudo-random object contents, shared by the server and the tests.

`POST /_control/generate` writes objects with these bytes so that tests can create GiB-sized
objects without sending them, and still know every byte they should read back.
Each 1 MiB block is a rotation of one per-seed random block, stamped with the seed and the block
index, so the stream is cheap to produce but never repeats with a 1 MiB period (a reader that
returned the wrong block would be caught).
"""

from __future__ import annotations

import functools
import random
import struct
from collections.abc import Iterator

BLOCK_SIZE = 1 << 20
_MASK64 = 0xFFFFFFFFFFFFFFFF


@functools.lru_cache(maxsize=8)
def _base_block(seed: int) -> bytes:
    return random.Random(seed).randbytes(BLOCK_SIZE)


def _mix(seed: int, index: int) -> int:
    # splitmix64 finaliser: spreads consecutive indices over the whole block.
    z = (seed * 0x9E3779B97F4A7C15 + index + 1) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


@functools.lru_cache(maxsize=64)
def generated_block(seed: int, index: int) -> bytes:
    """Block `index` (BLOCK_SIZE bytes) of the stream for `seed`."""
    base = _base_block(seed)
    offset = _mix(seed, index) % BLOCK_SIZE
    rotated = base[offset:] + base[:offset]
    return struct.pack("<QQ", seed & _MASK64, index) + rotated[16:]


def iter_generated(seed: int, size: int, start: int = 0) -> Iterator[bytes]:
    """Yield the bytes [start, size) of the object generated from `seed`, block by block."""
    pos = start
    while pos < size:
        index, within = divmod(pos, BLOCK_SIZE)
        block = generated_block(seed, index)
        piece = block[within : within + (size - pos)]
        yield piece
        pos += len(piece)


def generated_bytes(seed: int, start: int, end: int) -> bytes:
    """Bytes [start, end) of the generated stream (what a ranged GET must return)."""
    return b"".join(iter_generated(seed, end, start))
