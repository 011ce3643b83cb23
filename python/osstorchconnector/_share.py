"""Which objects one pass of one DataLoader worker reads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Pass:
    """One pass over a worker's share: global worker ``index`` of ``count``, the first
    ``skip`` objects of the share already had (a resumed pass), the epoch, and the seed of a
    shuffle drawn per pass (None when the order needs none)."""

    index: int
    count: int
    skip: int = 0
    epoch: int = 0
    seed: int | None = None

    @property
    def first(self) -> int:
        """Position, in the whole order, of the first object this pass fetches."""
        return self.index + self.skip * self.count
