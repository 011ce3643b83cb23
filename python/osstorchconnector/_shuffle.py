"""A seeded permutation of ``range(n)`` that needs no memory: position ``p`` of an epoch's
order is ``catalogue[permutation(p)]``, computed when needed.

A list of n shuffled indices would cost 8+ bytes per object in every worker (80 MB for 10 M
objects); this is a 4-round Feistel network over the smallest power-of-4 domain holding ``n``,
walking the cycle until the value falls inside ``range(n)`` (a bijection of the domain restricted
to ``range(n)`` stays a bijection). Keyed by (seed, epoch), so the order is the same in every
process and every rank layout.
"""

from __future__ import annotations

_M64 = (1 << 64) - 1


def _mix(x: int) -> int:
    """splitmix64's finaliser: a cheap, well-spread 64-bit hash."""
    x &= _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


class Permutation:
    """``perm(i)`` for ``i in range(n)``: each value of ``range(n)`` exactly once."""

    ROUNDS = 4

    def __init__(self, n: int, seed: int, epoch: int) -> None:
        self.n = n
        bits = max(2, (n - 1).bit_length())
        self._half = (bits + 1) // 2
        self._mask = (1 << self._half) - 1
        base = _mix(_mix(seed) ^ (epoch * 0x9E3779B97F4A7C15))
        self._keys = [_mix(base + r) for r in range(self.ROUNDS)]

    def _feistel(self, x: int) -> int:
        left, right = x >> self._half, x & self._mask
        for key in self._keys:
            left, right = right, left ^ (_mix(right ^ key) & self._mask)
        return (left << self._half) | right

    def __call__(self, i: int) -> int:
        if not 0 <= i < self.n:
            raise IndexError(f"position {i} outside a permutation of {self.n}")
        x = self._feistel(i)
        while x >= self.n:  # cycle-walk back into range(n)
            x = self._feistel(x)
        return x
