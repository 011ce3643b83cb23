"""Catalogue: the objects of a map-style dataset, held compactly.

A dataset of millions of objects is listed once, in the process that builds it, and reaches
every DataLoader worker with the dataset (inherited on fork, pickled on spawn). One Python
object per key would cost ~150 bytes each and pickle slowly; here every field is one flat
buffer: the keys' UTF-8 bytes end to end with their end offsets, sizes, and an index into a
short list for buckets and labels (datasets use few of each; a label per object would
cost a Python string each). 1 M keys of ~40 bytes cost
~60 MB and pickle as a handful of large byte strings.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ._core import uri_protocol
from .exceptions import OssConfigError

UNKNOWN_SIZE = -1


@dataclass(frozen=True)
class Entry:
    """One object of the catalogue."""

    bucket: str
    key: str
    size: int  # UNKNOWN_SIZE until read (objects named by URI or manifest)
    label: str
    protocol: str = "oss"

    @property
    def uri(self) -> str:
        return f"{self.protocol}://{self.bucket}/{self.key}"


class _Interned:
    """A few distinct strings (buckets, labels) and, per entry, the index of its string."""

    def __init__(self) -> None:
        self.values: list[str] = []
        self._ids: dict[str, int] = {}
        self.of = array("I")

    def add(self, value: str) -> None:
        i = self._ids.get(value)
        if i is None:
            i = self._ids[value] = len(self.values)
            self.values.append(value)
        self.of.append(i)

    def get(self, index: int) -> str:
        return self.values[self.of[index]]

    def __getstate__(self) -> tuple[list[str], array[int]]:
        return self.values, self.of

    def __setstate__(self, state: tuple[list[str], array[int]]) -> None:
        self.values, self.of = state
        self._ids = {v: i for i, v in enumerate(self.values)}


class Catalogue:
    """Objects by position: ``len``, ``catalogue[i]`` → :class:`Entry`; all of one protocol
    (``"oss"`` or ``"s3"``)."""

    def __init__(self, protocol: str = "oss") -> None:
        self.protocol = protocol
        self._keys: bytes | bytearray = bytearray()
        self._key_ends = array("Q")
        self._sizes = array("q")
        self._buckets = _Interned()
        self._labels = _Interned()

    @classmethod
    def of(cls, entries: Iterable[tuple[str, str, int, str]]) -> Catalogue:
        """From ``(bucket, key, size, label)`` tuples, in order."""
        catalogue = cls()
        for bucket, key, size, label in entries:
            catalogue.append(bucket, key, size, label)
        return catalogue

    def append(self, bucket: str, key: str, size: int, label: str) -> None:
        if isinstance(self._keys, bytes):  # unpickled: frozen until appended to
            self._keys = bytearray(self._keys)
        self._keys += key.encode()
        self._key_ends.append(len(self._keys))
        self._sizes.append(size)
        self._buckets.add(bucket)
        self._labels.add(label)

    def __len__(self) -> int:
        return len(self._key_ends)

    def __getitem__(self, index: int) -> Entry:
        """Entry ``index`` (``0 <= index < len``; callers normalise negative indices)."""
        start = self._key_ends[index - 1] if index else 0
        key = self._keys[start : self._key_ends[index]].decode()
        bucket = self._buckets.get(index)
        return Entry(bucket, key, self._sizes[index], self._labels.get(index), self.protocol)

    def nbytes(self) -> int:
        """Bytes held by the flat buffers (what a worker receives)."""
        parts = (self._key_ends, self._sizes, self._buckets.of, self._labels.of)
        return len(self._keys) + sum(a.itemsize * len(a) for a in parts)

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["_keys"] = bytes(self._keys)  # pickles as one string, not a bytearray copy chain
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)


def listed(client: Any, bucket: str, prefix: str) -> Catalogue:
    """Every object under ``prefix`` (one listing, page by page), with its size."""
    catalogue = Catalogue(client.protocol)
    token: str | None = None
    while True:
        page, token = client.list_page(bucket, prefix, token)
        for key, size, _etag in page:
            catalogue.append(bucket, key, size, "")
        if token is None:
            return catalogue


def named(uris: Iterable[tuple[str, str]], parse: Any) -> Catalogue:
    """The objects of ``(uri, label)`` pairs, sizes unknown; ``parse`` splits a URI.

    Raises:
        OssConfigError: a URI is malformed, or the URIs mix oss:// and s3://.
    """
    catalogue = Catalogue()
    first = ""
    for uri, label in uris:
        bucket, key = parse(uri)
        protocol = uri_protocol(uri)
        if not first:
            first, catalogue.protocol = uri, protocol
        elif protocol != catalogue.protocol:
            raise OssConfigError(f"{uri} and {first}: one dataset takes URIs of one protocol")
        catalogue.append(bucket, key, UNKNOWN_SIZE, label)
    return catalogue
