"""CRC-64/XZ (a.k.a. CRC-64/ECMA-182 as OSS uses it) for the `x-oss-hash-crc64ecma` header.

OSS reports the CRC as a decimal string of the reflected ECMA-182 polynomial with init and
xorout all-ones. The C extension of `crcmod` (a dependency of both official SDKs) is used when
it is importable because multi-GiB test objects would take minutes in pure Python; the table
implementation below is the fallback and the reference the tests check it against.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

POLY_REFLECTED = 0xC96C5795D7870F42  # bit-reversed 0x42F0E1EBA9EA3693
_MASK = 0xFFFFFFFFFFFFFFFF


def _make_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ POLY_REFLECTED if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _make_table()


def crc64_update_pure(crc: int, data: bytes | memoryview) -> int:
    """Continue a CRC over `data`; `crc` is a finished value (0 for the empty string)."""
    crc ^= _MASK
    table = _TABLE
    for b in bytes(data):
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ _MASK


def _load_fast() -> Callable[[bytes | memoryview, int], int] | None:
    try:
        import crcmod
    except ImportError:
        return None
    # crcmod's `crc` argument is the finished value of the previous data, which matches
    # crc64_update_pure's chaining convention.
    fun: Callable[[bytes | memoryview, int], int] = crcmod.mkCrcFun(
        0x142F0E1EBA9EA3693, initCrc=0, xorOut=_MASK, rev=True
    )
    return fun


_FAST = _load_fast()


def crc64_update(crc: int, data: bytes | memoryview) -> int:
    if _FAST is not None:
        return _FAST(data, crc)
    return crc64_update_pure(crc, data)


def crc64(data: bytes | memoryview) -> int:
    return crc64_update(0, data)


def _times(matrix: list[int], vector: int) -> int:
    """GF(2) matrix (one int per column) times vector."""
    out = 0
    i = 0
    while vector:
        if vector & 1:
            out ^= matrix[i]
        vector >>= 1
        i += 1
    return out


def _square(matrix: list[int]) -> list[int]:
    return [_times(matrix, column) for column in matrix]


def _one_zero_byte() -> list[int]:
    one_bit = [POLY_REFLECTED] + [1 << n for n in range(63)]  # shift the register by one bit
    return _square(_square(_square(one_bit)))


# _ZEROS[k] advances a CRC register over 2**k zero bytes; grown on demand, under the lock.
_ZEROS: list[list[int]] = [_one_zero_byte()]
_ZEROS_LOCK = threading.Lock()


def _zeros(k: int) -> list[int]:
    if k >= len(_ZEROS):
        with _ZEROS_LOCK:
            while k >= len(_ZEROS):
                _ZEROS.append(_square(_ZEROS[-1]))
    return _ZEROS[k]


def crc64_combine(crc1: int, crc2: int, len2: int) -> int:
    """The CRC of A + B from crc1 = CRC(A), crc2 = CRC(B) and len2 = len(B) (as zlib's
    crc32_combine), so a multipart object's CRC needs no second pass over its bytes."""
    k = 0
    while len2 >> k:
        if (len2 >> k) & 1:
            crc1 = _times(_zeros(k), crc1)
        k += 1
    return crc1 ^ crc2


class Crc64:
    """Incremental CRC for streamed bodies."""

    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes | memoryview) -> None:
        self.value = crc64_update(self.value, data)
