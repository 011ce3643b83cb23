"""Tar archives in OSS as datasets: every regular member is one item, read in runs of members
with large ranged GETs (never one request per member), located through the archive's index
file (the official connector's format, :mod:`._tar_index`)."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

from ._body import Body, SliceBody
from ._client import ClientFactory
from ._core import RangeStream, parse_oss_uri
from ._share import Pass
from ._tar_format import parse_member
from ._tar_index import decode_index
from .data_object import DataObject
from .exceptions import OssFormatError

BLOCK = 512
# Bytes of consecutive members fetched by one ranged GET: large enough that a run of 100 KiB
# members costs one request per ~80 members, small enough that runs in flight fit prefetchMB.
RUN_BYTES = 8 * 1024 * 1024
# Shuffled chunks read at once, their members mixed at random.
INTERLEAVED = 4
# Headers of a member are read from the first bytes of its span; a pax header longer than this
# makes the member be parsed from its whole span instead.
_HEAD = 4096


class TarArchive:
    """One version of a tar object and its index: member ``i`` spans bytes
    ``[blocks[i] * 512, blocks[i + 1] * 512)`` (its headers, data and padding)."""

    def __init__(self, factory: ClientFactory, tar_uri: str, tar_index_uri: str) -> None:
        bucket, key = parse_oss_uri(tar_uri)
        index_bucket, _ = parse_oss_uri(tar_index_uri)
        if index_bucket != bucket:
            raise ValueError(
                f"tar_uri and tar_index_uri must be in the same bucket: {tar_uri}, {tar_index_uri}"
            )
        client = factory.get()
        size, etag, _crc = client.head_object(tar_uri)
        index = decode_index(client.get_object(tar_index_uri).read(), tar_index_uri)
        self.uri = tar_uri
        self.bucket = bucket
        self.key = key
        self.etag = etag
        self.blocks = index.blocks
        if self.blocks and self.blocks[-1] * BLOCK > size:
            raise ValueError(
                f"index {tar_index_uri} describes {self.blocks[-1] * BLOCK} bytes but "
                f"{tar_uri} has {size}: they do not belong together"
            )

    def __len__(self) -> int:
        return max(0, len(self.blocks) - 1)

    def span(self, first: int, last: int) -> tuple[int, int]:
        """Bytes of members ``first..last`` (exclusive)."""
        return self.blocks[first] * BLOCK, self.blocks[last] * BLOCK

    def runs(self, first: int, last: int, run_bytes: int) -> list[tuple[int, int]]:
        """Members ``first..last`` cut into runs of consecutive members of about ``run_bytes``
        (a member larger than that is a run of its own)."""
        out = []
        start = first
        while start < last:
            end = start + 1
            limit = self.blocks[start] * BLOCK + run_bytes
            while end < last and self.blocks[end + 1] * BLOCK <= limit:
                end += 1
            out.append((start, end))
            start = end
        return out

    def fetch(
        self, factory: ClientFactory, runs: Sequence[tuple[int, int]], concurrency: int = 0
    ) -> RangeStream:
        """A stream of the runs' bytes, in order, all of this version."""
        ranges = [self.span(a, b) for a, b in runs]
        return factory.get().stream_ranges(
            self.bucket,
            self.key,
            ranges,
            if_match=self.etag or None,
            concurrency=concurrency or None,
        )

    def members(self, body: Body, first: int, last: int) -> Iterator[tuple[int, DataObject]]:
        """``(index, DataObject)`` of members ``first..last`` from the run's bytes ``body``."""
        base = self.blocks[first] * BLOCK
        for i in range(first, last):
            start = self.blocks[i] * BLOCK
            length = self.blocks[i + 1] * BLOCK - start
            try:
                entry = parse_member(body.read(start - base, min(length, _HEAD)), start, self.uri)
            except OssFormatError:
                if length <= _HEAD:
                    raise
                # headers longer than _HEAD (a very long pax record): parse the whole span
                entry = parse_member(body.read(start - base, length), start, self.uri)
            data = SliceBody(body, entry.data_offset - base, entry.size)
            yield i, DataObject(entry.name, entry.size, str(i), data, self.bucket)


def contiguous_share(count: int, index: int, workers: int) -> tuple[int, int]:
    """Worker ``index``'s contiguous slice of ``count`` members (the first ``count % workers``
    workers take one more), as the official splits a tar."""
    per, extra = divmod(count, workers)
    start = index * per + min(index, extra)
    return start, start + per + (1 if index < extra else 0)


def shuffled_chunks(count: int, chunk_size: int, seed: int) -> list[tuple[int, int]]:
    """``[first, last)`` chunks of ``chunk_size`` members covering ``count``, in an order that
    is a function of ``seed`` alone (every worker computes the same one)."""
    size = max(1, chunk_size)
    chunks = [(a, min(a + size, count)) for a in range(0, count, size)]
    random.Random(seed).shuffle(chunks)
    return chunks


def interleave(
    live: list[Iterator[Any]], streams: Iterator[Iterator[Any]], rng: random.Random
) -> Iterator[Any]:
    """Items of every stream, each stream's in its order: the next item is taken from one of
    the ``live`` streams at random, and a finished one is replaced by the next of ``streams``."""
    while live:
        pick = rng.randrange(len(live))
        try:
            yield next(live[pick])
        except StopIteration:
            following = next(streams, None)
            if following is None:
                live.pop(pick)
            else:
                live[pick] = following


def replay_interleave(
    sizes: list[int], width: int, rng: random.Random, skip: int
) -> tuple[list[tuple[int, int]], int]:
    """Where :func:`interleave` over streams of these sizes, ``width`` of them live at once, is
    after yielding ``skip`` items,
    found without reading them: the open streams as ``(stream, items taken)`` and how many
    streams were opened; ``rng`` is left as :func:`interleave` would leave it."""
    live = [[i, 0] for i in range(min(width, len(sizes)))]
    opened = len(live)
    while skip and live:
        pick = rng.randrange(len(live))
        stream, taken = live[pick]
        if taken < sizes[stream]:
            live[pick][1] += 1
            skip -= 1
        elif opened < len(sizes):
            live[pick] = [opened, 0]
            opened += 1
        else:
            live.pop(pick)
    return [(stream, taken) for stream, taken in live], opened


def epoch_seed(explicit: int | None, counter: int) -> int:
    """The shuffle seed of this pass: the same in every worker of one epoch, another each
    epoch. Inside workers it derives from the DataLoader's base seed (drawn from torch's
    generator in the main process each epoch); in the main process it is drawn from torch's
    default generator. ``counter`` (passes over this dataset object in this process) tells
    epochs apart in persistent workers, whose base seed stays the same."""
    if explicit is not None:
        return explicit * 1_000_003 + counter
    from ._torch import get_worker_info

    info = get_worker_info()
    if info is not None:
        return (int(info.seed) - int(info.id)) * 1_000_003 + counter
    import torch

    return int(torch.empty((), dtype=torch.int64).random_().item())


class TarOpener:
    """This worker's members of an archive, as DataObjects: without shuffle a contiguous share
    read in runs; with shuffle, chunks of ``chunk_size`` members in a seeded order (chunk j to
    worker j % workers), ``interleaved`` chunks read at once and their members mixed."""

    def __init__(
        self, archive: TarArchive, shuffle: bool, chunk_size: int, seed: int | None = None
    ) -> None:
        self.archive = archive
        self.shuffle = shuffle
        self.chunk_size = chunk_size
        self.seed = seed
        self.drawn: int | None = None  # from shuffle(generator)
        self.passes = 0  # in this process: tells epochs of persistent workers apart

    def __call__(self, factory: ClientFactory, share: Pass) -> Iterator[DataObject]:
        n = len(self.archive)
        index, count = share.index, share.count
        if not self.shuffle:
            first, last = contiguous_share(n, index, count)
            return self._read([(min(first + share.skip, last), last)], factory, concurrency=0)
        seed = share.seed if share.seed is not None else self._draw_seed(share.epoch)
        mine = shuffled_chunks(n, self.chunk_size, seed)[index::count]
        return self._shuffled(mine, factory, random.Random(seed * 31 + index), share.skip)

    def pass_seed(self, epoch: int) -> int | None:
        """The seed of the pass about to start (None unshuffled): with ``seed`` given, a
        function of (seed, epoch); else drawn as :func:`epoch_seed` says. A resumed pass
        takes the one its state recorded instead."""
        return self._draw_seed(epoch) if self.shuffle else None

    def _draw_seed(self, epoch: int) -> int:
        if self.seed is not None:
            return self.seed * 1_000_003 + epoch
        self.passes += 1
        return epoch_seed(self.drawn, self.passes - 1)

    def _read(
        self, chunks: list[tuple[int, int]], factory: ClientFactory, concurrency: int
    ) -> Iterator[DataObject]:
        runs = [r for a, b in chunks for r in self.archive.runs(a, b, RUN_BYTES)]
        if not runs:
            return
        stream = self.archive.fetch(factory, runs, concurrency)
        try:
            for (first, last), body in zip(runs, stream, strict=True):
                for _i, obj in self.archive.members(body, first, last):
                    yield obj
        finally:
            stream.close()

    def _shuffled(
        self,
        chunks: list[tuple[int, int]],
        factory: ClientFactory,
        rng: random.Random,
        skip: int,
    ) -> Iterator[DataObject]:
        """The chunks' members mixed; the first ``skip`` of that order passed over unread
        (a resumed pass: the mixing is replayed on the chunks' sizes)."""
        concurrency = max(1, factory.get().prefetch_concurrency // INTERLEAVED)
        live, opened = replay_interleave([b - a for a, b in chunks], INTERLEAVED, rng, skip)
        started = [
            self._read([(chunks[c][0] + taken, chunks[c][1])], factory, concurrency)
            for c, taken in live
        ]
        streams = (self._read([chunk], factory, concurrency) for chunk in chunks[opened:])
        return interleave(started, streams, rng)
