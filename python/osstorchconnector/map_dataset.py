"""OssMapDataset: OSS objects by index, for DataLoader shuffling, samplers and batches."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ._catalogue import Catalogue, listed, named
from ._client import ClientFactory, ClientOptions, check_options
from ._core import parse_oss_uri, uri_protocol
from ._share import Pass
from ._torch import MapDatasetBase
from .data_object import DataObject
from .iterable_dataset import (
    ManifestOpener,
    Transform,
    identity,
    open_manifest,
    streamed_objects,
)
from .manifest import ManifestParser
from .tar_dataset import RUN_BYTES, TarArchive

if TYPE_CHECKING:
    from typing_extensions import Unpack


class OssMapDataset(MapDatasetBase):  # type: ignore[misc]
    """A map-style dataset over OSS objects: ``len(ds)``, ``ds[i]``, ``ds.__getitems__(batch)``.

    The objects are catalogued once, when the dataset is built (a prefix is listed there, in
    the main process); DataLoader workers receive the catalogue with the dataset, compactly
    (see :mod:`._catalogue`), and never list. ``__getitems__`` — what a DataLoader calls for
    each batch — fetches the whole batch at once through the same pipeline as the iterable
    dataset (``prefetchConcurrency`` requests in flight, ``prefetchMB`` of memory) and returns
    the items in the order asked. Items are DataObjects (picklable) passed through
    ``transform``. Zero-byte objects are part of the dataset.
    """

    def __init__(
        self,
        factory: ClientFactory,
        source: Catalogue | TarArchive,
        transform: Transform = identity,
    ) -> None:
        self._factory = factory
        self._source: _Source = (
            _TarMembers(source) if isinstance(source, TarArchive) else _Listed(source)
        )
        self._transform = transform
        factory.get()  # validate endpoint, region, config and credentials now

    @classmethod
    def from_prefix(
        cls,
        oss_uri: str,
        endpoint: str,
        *,
        transform: Transform = identity,
        **options: Unpack[ClientOptions],
    ) -> OssMapDataset:
        """Every object whose key starts with the prefix of ``oss_uri``, listed now, in key order.

        Arguments are those of :meth:`OssIterableDataset.from_prefix`.

        Raises:
            OssConfigError: the URI, endpoint, region, config or credentials are invalid.
            OssNotFoundError: the bucket does not exist.
        """
        bucket, prefix = parse_oss_uri(oss_uri)
        factory = _factory(endpoint, options, "from_prefix", uri_protocol(oss_uri))
        return cls(factory, listed(factory.get(), bucket, prefix), transform)

    @classmethod
    def from_objects(
        cls,
        object_uris: str | Iterable[str],
        endpoint: str,
        *,
        transform: Transform = identity,
        **options: Unpack[ClientOptions],
    ) -> OssMapDataset:
        """The objects named by ``object_uris`` (a URI or an iterable of URIs), in that order.

        Nothing is requested now; a missing object raises :class:`OssNotFoundError` when read.

        Raises:
            OssConfigError: a URI or an option is invalid.
            ValueError: no URI given.
        """
        uris = (object_uris,) if isinstance(object_uris, str) else object_uris
        catalogue = named(((uri, "") for uri in uris), parse_oss_uri)
        if not len(catalogue):
            raise ValueError("OssMapDataset.from_objects(): object_uris is empty")
        factory = _factory(endpoint, options, "from_objects", catalogue.protocol)
        return cls(factory, catalogue, transform)

    @classmethod
    def from_manifest_file(
        cls,
        manifest_file_path: str,
        manifest_parser: ManifestParser,
        oss_base_uri: str,
        endpoint: str,
        *,
        transform: Transform = identity,
        **options: Unpack[ClientOptions],
    ) -> OssMapDataset:
        """The objects of a manifest file (local path or ``oss://`` URI), with its labels.

        Arguments are those of :meth:`OssIterableDataset.from_manifest_file`.

        Raises:
            OssNotFoundError: the manifest does not exist.
            OssConfigError: ``oss_base_uri``, an entry's URI or an option is invalid.
        """
        if oss_base_uri:
            parse_oss_uri(oss_base_uri)
        protocol = uri_protocol(oss_base_uri) if oss_base_uri else "oss"
        factory = _factory(endpoint, options, "from_manifest_file", protocol)
        manifest = open_manifest(factory, manifest_file_path)
        entries = ManifestOpener(manifest, manifest_parser, oss_base_uri).entries(Pass(0, 1))
        catalogue = named(entries, parse_oss_uri)
        factory.protocol = catalogue.protocol
        return cls(factory, catalogue, transform)

    @classmethod
    def from_tar(
        cls,
        tar_uri: str,
        tar_index_uri: str,
        endpoint: str,
        *,
        transform: Transform = identity,
        **options: Unpack[ClientOptions],
    ) -> OssMapDataset:
        """The regular members of a tar archive by index (see
        :meth:`OssIterableDataset.from_tar`); a batch's neighbouring members are fetched
        together, one ranged GET per run.

        Raises:
            OssConfigError: a URI or an option is invalid.
            OssNotFoundError: the archive or the index does not exist.
            ValueError: the two URIs name different buckets, or the index is not one.
        """
        factory = _factory(endpoint, options, "from_tar", uri_protocol(tar_uri))
        return cls(factory, TarArchive(factory, tar_uri, tar_index_uri), transform)

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> Any:
        """Item ``index`` (negative counts from the end).

        Raises:
            IndexError: out of range.
            OssNotFoundError: the object is missing.
        """
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[Any]:
        """Items ``indices``, fetched concurrently, in the order asked.

        Raises:
            IndexError: an index is out of range (before anything is fetched).
            OssNotFoundError: an object is missing (naming its key).
        """
        positions = [self._position(i) for i in indices]
        if not positions:
            return []
        transform = self._transform
        return [transform(obj) for obj in self._source.fetch(self._factory, positions)]

    def __iter__(self) -> Iterator[Any]:
        """Every item in order (one batch at a time, so iterating is not one request at a
        time)."""
        batch = 64
        for start in range(0, len(self), batch):
            yield from self.__getitems__(range(start, min(start + batch, len(self))))

    @staticmethod
    def is_continuous(indices: Sequence[int]) -> bool:
        """True when every index is the previous one plus one (as the official's helper)."""
        return all(b == a + 1 for a, b in itertools.pairwise(indices))

    def _position(self, index: int) -> int:
        n = len(self._source)
        if not isinstance(index, int):
            index = int(index)  # numpy and torch integers from samplers
        position = index + n if index < 0 else index
        if not 0 <= position < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} objects")
        return position


def _factory(endpoint: str, options: ClientOptions, where: str, protocol: str) -> ClientFactory:
    check_options(dict(options), f"OssMapDataset.{where}()")
    return ClientFactory(endpoint, protocol, **options)


class _Source(Protocol):
    def __len__(self) -> int: ...

    def fetch(self, factory: ClientFactory, positions: list[int]) -> Iterator[DataObject]:
        """The objects at ``positions`` (valid), fetched at once, in that order."""
        ...


class _Listed:
    """Objects of a catalogue, each its own GET, through the dataset pipeline."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue

    def __len__(self) -> int:
        return len(self.catalogue)

    def fetch(self, factory: ClientFactory, positions: list[int]) -> Iterator[DataObject]:
        entries = [self.catalogue[p] for p in positions]
        requests = ((e.uri, e.label, e.size) for e in entries)
        return streamed_objects(factory, factory.get().stream_objects(requests))


class _TarMembers:
    """Members of a tar archive: the batch's members sorted into runs of neighbours, one
    ranged GET per run, all runs at once."""

    def __init__(self, archive: TarArchive) -> None:
        self.archive = archive

    def __len__(self) -> int:
        return len(self.archive)

    def fetch(self, factory: ClientFactory, positions: list[int]) -> Iterator[DataObject]:
        wanted = sorted(set(positions))
        runs: list[tuple[int, int]] = []
        for i in wanted:
            if runs and runs[-1][1] == i and self._fits(runs[-1][0], i + 1):
                runs[-1] = (runs[-1][0], i + 1)
            else:
                runs.append((i, i + 1))
        found: dict[int, DataObject] = {}
        stream = self.archive.fetch(factory, runs)
        try:
            for (first, last), body in zip(runs, stream, strict=True):
                found.update(self.archive.members(body, first, last))
        finally:
            stream.close()
        seen: set[int] = set()
        for p in positions:
            obj = found[p]
            yield obj.copy() if p in seen else obj  # a repeated index gets its own reader
            seen.add(p)

    def _fits(self, first: int, last: int) -> bool:
        start, end = self.archive.span(first, last)
        return end - start <= RUN_BYTES
