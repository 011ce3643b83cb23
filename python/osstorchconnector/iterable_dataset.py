"""OssIterableDataset: stream objects from OSS into a DataLoader, in order, without a local copy."""

from __future__ import annotations

import io
import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ._catalogue import Catalogue, listed, named
from ._client import ClientFactory, ClientOptions, RangeFetcher, check_options
from ._core import ObjectStream, parse_oss_uri, uri_protocol
from ._share import Pass
from ._shared_listing import SharedListing
from ._shuffle import Permutation
from ._torch import IterableDatasetBase, RankShards, get_worker_info, worker_shard
from .data_object import DataObject
from .exceptions import OssNotFoundError
from .manifest import ManifestParser, manifest_entries
from .tar_dataset import TarArchive, TarOpener

if TYPE_CHECKING:
    from typing_extensions import Unpack

Transform = Callable[[DataObject], Any]


def identity(obj: DataObject) -> DataObject:
    """The default transform: a detached copy of the object."""
    return obj.copy()


class OssIterableDataset(IterableDatasetBase):  # type: ignore[misc]
    """An iterable dataset over OSS objects.

    Build it with :meth:`from_prefix`, :meth:`from_objects`, :meth:`from_manifest_file` or
    :meth:`from_tar`. Inside DataLoader workers each worker streams a disjoint share (object
    ``i`` goes to worker ``i % num_workers``), so every object is yielded exactly once per
    epoch. Under torch.distributed (a default process group of more than one rank) the shares
    are over ranks x workers: object ``i`` goes to global worker ``i % (world_size *
    num_workers)``, rank-major, so the job reads every object once; ``rank_sharding=False``
    makes every rank read everything, as the official connector does.
    """

    def __init__(
        self,
        factory: ClientFactory,
        open_objects: Callable[[ClientFactory, Pass], Iterator[DataObject]],
        transform: Transform = identity,
        rank_sharding: bool = True,
    ) -> None:
        self._factory = factory
        self._open = open_objects
        self._shards = RankShards(rank_sharding)
        self._transform = transform
        self._epoch = 0
        self._worker_passes = 0  # passes made by this DataLoader worker process
        self._resume: dict[str, Any] | None = None  # a loaded state, for the next pass
        self._position: dict[str, Any] = {}  # where the current pass is
        factory.get()  # validate endpoint, region, config and credentials now, not mid-epoch

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next passes belong to: with ``shuffle=True`` the order is a function
        of (seed, epoch, dataset). Call it before each epoch, as for ``DistributedSampler``.
        Persistent workers (``persistent_workers=True``) do not see later calls: they take
        the epoch set when they started and add one for each pass, which gives the same
        orders when epochs are consecutive."""
        self._epoch = int(epoch)

    def state_dict(self) -> dict[str, Any]:
        """Where this process's pass is: its epoch, its share (global worker index and count)
        and how many objects it has yielded. torchdata's ``StatefulDataLoader`` calls it in
        each worker; :meth:`load_state_dict` resumes from it without refetching anything."""
        return dict(self._position) or {"epoch": self._epoch, "yielded": 0}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume: the next pass is the saved one's epoch, skipping the objects it yielded
        (passed over unfetched). The share must be the same (same ranks and workers).

        Raises:
            ValueError: the state is not one of :meth:`state_dict`.
        """
        try:
            epoch, yielded = int(state["epoch"]), int(state["yielded"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not an OssIterableDataset state: {state!r}") from e
        self._epoch = epoch
        self._resume = {"yielded": yielded, "share": state.get("share"), "seed": state.get("seed")}

    @classmethod
    def from_prefix(
        cls,
        oss_uri: str,
        endpoint: str,
        *,
        transform: Transform = identity,
        rank_sharding: bool = True,
        shuffle: bool = False,
        seed: int = 0,
        **options: Unpack[ClientOptions],
    ) -> OssIterableDataset:
        """Every object whose key starts with the prefix of ``oss_uri`` (``oss://bucket/prefix``).

        Args:
            oss_uri: ``oss://bucket/prefix``; ``oss://bucket/`` for the whole bucket.
            endpoint: e.g. ``http://oss-cn-beijing-internal.aliyuncs.com``.
            transform: applied to every DataObject; default returns ``obj.copy()``.
            rank_sharding: under torch.distributed, share the objects among ranks too (the
                default); False: every rank reads every object.
            shuffle: read in a seeded order, another each epoch (:meth:`set_epoch`): a global
                permutation of the objects, the same on every rank layout. The prefix is then
                listed once, here, into a compact catalogue (~70 bytes per object).
            seed: the shuffle's seed.
            options: ``cred_path``, ``config_path``, ``cred_provider``, ``region``,
                ``path_style`` (see :class:`~osstorchconnector._client.ClientOptions`).

        Raises:
            OssConfigError: the URI, endpoint, region, config or credentials are invalid.
            TypeError: an unknown keyword.
        """
        bucket, prefix = parse_oss_uri(oss_uri)
        factory = _factory(endpoint, options, "from_prefix", uri_protocol(oss_uri))
        if shuffle:  # a global order needs the whole listing: taken once, here
            shuffled = _ShuffledOpener(listed(factory.get(), bucket, prefix), seed)
            return cls(factory, shuffled, transform, rank_sharding)
        return cls(factory, _PrefixOpener(oss_uri), transform, rank_sharding)

    @classmethod
    def from_objects(
        cls,
        object_uris: str | Iterable[str],
        endpoint: str,
        *,
        transform: Transform = identity,
        rank_sharding: bool = True,
        shuffle: bool = False,
        seed: int = 0,
        **options: Unpack[ClientOptions],
    ) -> OssIterableDataset:
        """The objects named by ``object_uris`` (a URI or an iterable of URIs), in order.

        A one-shot iterator is materialised so the dataset can be iterated for several epochs and
        sent to worker processes. Other arguments are as for :meth:`from_prefix`.

        Raises:
            OssConfigError: a URI (when given as a str, list or tuple) or an option is invalid.
        """
        uris: Iterable[str]
        if isinstance(object_uris, str):
            uris = (object_uris,)
        elif isinstance(object_uris, Iterator):
            uris = tuple(object_uris)
        else:
            uris = object_uris
        if isinstance(uris, list | tuple):
            protocol = named(((uri, "") for uri in uris), parse_oss_uri).protocol
        else:
            first = next(iter(uris), None)
            protocol = uri_protocol(first) if first is not None else "oss"
        factory = _factory(endpoint, options, "from_objects", protocol)
        if shuffle:
            catalogue = named(((uri, "") for uri in uris), parse_oss_uri)
            return cls(factory, _ShuffledOpener(catalogue, seed), transform, rank_sharding)
        return cls(factory, _UriOpener(uris), transform, rank_sharding)

    @classmethod
    def from_manifest_file(
        cls,
        manifest_file_path: str,
        manifest_parser: ManifestParser,
        oss_base_uri: str,
        endpoint: str,
        *,
        transform: Transform = identity,
        rank_sharding: bool = True,
        shuffle: bool = False,
        seed: int = 0,
        **options: Unpack[ClientOptions],
    ) -> OssIterableDataset:
        """The objects listed in a manifest file, in its order, with its labels.

        Args:
            manifest_file_path: A local path, or an ``oss://`` URI read with these credentials.
            manifest_parser: ``(io.IOBase) -> Iterable[(uri_or_key, label)]``, e.g.
                :func:`imagenet_manifest_parser`.
            oss_base_uri: Prepended to every key; ``""`` when the manifest holds full URIs.
            Others: as for :meth:`from_prefix`.

        A local manifest is parsed again at every epoch (in each worker, which takes its share);
        one in OSS is downloaded once, here.

        Raises:
            OssNotFoundError: the manifest does not exist.
            OssConfigError: ``oss_base_uri`` or an option is invalid.
        """
        protocol = uri_protocol(oss_base_uri) if oss_base_uri else "oss"
        factory = _factory(endpoint, options, "from_manifest_file", protocol)
        manifest = open_manifest(factory, manifest_file_path)
        opener = ManifestOpener(manifest, manifest_parser, oss_base_uri)
        if not oss_base_uri:  # full URIs: the first one tells the protocol
            first = next(opener.entries(Pass(0, 1)), None)
            factory.protocol = uri_protocol(first[0]) if first is not None else "oss"
        if shuffle:
            catalogue = named(opener.entries(Pass(0, 1)), parse_oss_uri)
            return cls(factory, _ShuffledOpener(catalogue, seed), transform, rank_sharding)
        return cls(factory, opener, transform, rank_sharding)

    @classmethod
    def from_tar(
        cls,
        tar_uri: str,
        tar_index_uri: str,
        endpoint: str,
        *,
        transform: Transform = identity,
        shuffle: bool = False,
        shuffle_chunk_size: int = 1000,
        rank_sharding: bool = True,
        seed: int | None = None,
        **options: Unpack[ClientOptions],
    ) -> OssIterableDataset:
        """Every regular member of a tar archive, located through its index file (the
        official connector's format; make one with :func:`generate_tar_archive`).

        Each member is a DataObject: key = member name, label = its index in the archive.
        DataLoader workers take contiguous shares; members are read in runs with large ranged
        GETs, many at once. With ``shuffle``, chunks of ``shuffle_chunk_size`` members are
        dealt to the workers in a seeded order, new each epoch (from torch's generator:
        ``torch.manual_seed`` makes it repeatable), and each worker reads a few chunks at once
        and mixes their members. Every member is yielded exactly once per epoch. With
        ``seed`` the order is a function of (seed, :meth:`set_epoch`'s epoch) alone.

        Raises:
            OssConfigError: a URI or an option is invalid.
            OssNotFoundError: the archive or the index does not exist.
            ValueError: the two URIs name different buckets, or the index is not one.
        """
        factory = _factory(endpoint, options, "from_tar", uri_protocol(tar_uri))
        archive = TarArchive(factory, tar_uri, tar_index_uri)
        opener = TarOpener(archive, shuffle, shuffle_chunk_size, seed)
        return cls(factory, opener, transform, rank_sharding)

    def shuffle(self, generator: Any = None) -> None:
        """Draws the seed of a tar dataset's shuffled order from ``generator`` (a
        ``torch.Generator``; torch's default one when None): later epochs derive from it."""
        if not isinstance(self._open, TarOpener):
            raise TypeError("shuffle() applies to datasets made by from_tar(shuffle=True)")
        import torch

        seed = torch.empty((), dtype=torch.int64).random_(generator=generator)
        self._open.drawn = int(seed.item())
        self._open.shuffle = True

    def __iter__(self) -> Iterator[Any]:
        index, count = self._shards.current()
        resume, self._resume = self._resume, None
        skip = 0
        if resume is not None:
            share = resume.get("share")
            if share is not None and list(share) != [index, count]:
                raise ValueError(
                    f"cannot resume: the state is of global worker {share[0]} of {share[1]}, "
                    f"this is worker {index} of {count} (same ranks and workers needed)"
                )
            skip = int(resume["yielded"])
        epoch = self._epoch
        if get_worker_info() is not None:
            # A persistent worker keeps the dataset it started with: each pass is the next
            # epoch, so consecutive epochs match those of workers started afresh.
            epoch += self._worker_passes if resume is None else 0
            self._worker_passes += 1
        seed = resume.get("seed") if resume is not None else None
        if seed is None and hasattr(self._open, "pass_seed"):  # an order drawn per pass
            seed = self._open.pass_seed(epoch)
        position: dict[str, Any] = {"epoch": epoch, "share": [index, count], "yielded": skip}
        if seed is not None:
            position["seed"] = seed  # a resumed pass needs the same order
        self._position = position
        transform = self._transform
        for obj in self._open(self._factory, Pass(index, count, skip, epoch, seed)):
            position["yielded"] += 1  # counted before the consumer has it: a state taken then
            # (as StatefulDataLoader takes it, after a batch) marks it as had
            out = transform(obj)
            del obj  # neither this frame nor its result between yields keeps a consumed
            yield out  # object (and its memory) alive while the next one is fetched
            del out


def streamed_objects(factory: ClientFactory, stream: ObjectStream) -> Iterator[DataObject]:
    """The stream's objects as DataObjects (readable by range once the stream has moved on)."""
    ranges = RangeFetcher(factory)
    info = get_worker_info()
    if info is not None and info.num_workers > 1:
        # The workers fetch objects side by side; one that also fetched its next large object
        # while its consumer held the current one would land it in fresh memory (see the Rust
        # ObjectStream::one_large_at_a_time).
        stream.one_large_at_a_time()
    try:
        for item in stream:
            obj = DataObject(
                item.key,
                item.size,
                item.label,
                item.first,
                item.bucket,
                etag=item.etag,
                rest=item.rest,
                ranges=ranges,
            )
            del item
            yield obj
            del obj
    finally:
        # The loop ended or was abandoned: stop prefetching now rather than when the stream
        # is collected (a kept large object may hold it for a long time).
        stream.close()


def _factory(endpoint: str, options: ClientOptions, where: str, protocol: str) -> ClientFactory:
    check_options(dict(options), f"OssIterableDataset.{where}()")
    return ClientFactory(endpoint, protocol, **options)


class _PrefixOpener:
    """Opens this worker's share of a listing (a class, not a closure, so it pickles for
    DataLoader workers started with spawn). Alone in its process, a worker lists in Rust as
    it streams; the DataLoader workers of a process share one listing per pass instead
    (``_shared_listing``), so a rank lists its prefix once per epoch."""

    def __init__(self, oss_uri: str) -> None:
        self.oss_uri = oss_uri
        self.listing = SharedListing()

    def __call__(self, factory: ClientFactory, share: Pass) -> Iterator[DataObject]:
        client = factory.get()
        if worker_shard()[1] <= 1:
            stream = client.stream_prefix(
                self.oss_uri, shard_index=share.index, shard_count=share.count, skip=share.skip
            )
        else:
            bucket, prefix = parse_oss_uri(self.oss_uri)
            listed = self.listing.entries(
                client, bucket, prefix, share.epoch, share.first, share.count
            )
            stream = client.stream_objects(listed)
        return streamed_objects(factory, stream)


class _UriOpener:
    """Opens this worker's share of a URI list: URI ``i`` goes to worker ``i % count``."""

    def __init__(self, uris: Iterable[str]) -> None:
        self.uris = uris

    def __call__(self, factory: ClientFactory, share: Pass) -> Iterator[DataObject]:
        mine = itertools.islice(self.uris, share.first, None, share.count)
        return streamed_objects(factory, factory.get().stream_objects((uri, "") for uri in mine))


class _LocalManifest:
    """A manifest on local disk, opened afresh for every pass."""

    def __init__(self, path: str) -> None:
        self.name = path

    def open(self) -> io.IOBase:
        return open(self.name, "rb")


class _FetchedManifest:
    """A manifest downloaded from OSS, kept in memory."""

    def __init__(self, name: str, body: bytes) -> None:
        self.name = name
        self.body = body

    def open(self) -> io.IOBase:
        reader = io.BytesIO(self.body)
        reader.name = self.name  # parsers report it in errors
        return reader


def open_manifest(factory: ClientFactory, path: str) -> _LocalManifest | _FetchedManifest:
    """A manifest to parse: a local file (read at every pass) or an ``oss://`` object
    (downloaded once, now).

    Raises:
        OssNotFoundError: it does not exist.
    """
    if path.startswith(("oss://", "s3://")):
        return _FetchedManifest(path, factory.for_uri(path).get_object(path).read())
    if not os.path.isfile(path):
        raise OssNotFoundError(f"manifest file {path} does not exist")
    return _LocalManifest(path)


class ManifestOpener:
    """Opens this worker's share of a manifest's entries: entry ``i`` goes to worker
    ``i % count``."""

    def __init__(
        self,
        manifest: _LocalManifest | _FetchedManifest,
        parser: ManifestParser,
        base_uri: str,
    ) -> None:
        self.manifest = manifest
        self.parser = parser
        self.base_uri = base_uri

    def __call__(self, factory: ClientFactory, share: Pass) -> Iterator[DataObject]:
        return streamed_objects(factory, factory.get().stream_objects(self.entries(share)))

    def entries(self, share: Pass) -> Iterator[tuple[str, str]]:
        with self.manifest.open() as reader:
            entries = manifest_entries(reader, self.manifest.name, self.parser, self.base_uri)
            yield from itertools.islice(entries, share.first, None, share.count)


class _ShuffledOpener:
    """This worker's share of a catalogue in the epoch's seeded order: position ``p`` of the
    order is ``catalogue[Permutation(n, seed, epoch)(p)]``, and position ``p`` goes to global
    worker ``p % count``. A global permutation: every object once per epoch over ranks x
    workers, whatever the layout; memory is the catalogue's (built when the dataset was)."""

    def __init__(self, catalogue: Catalogue, seed: int) -> None:
        self.catalogue = catalogue
        self.seed = seed

    def __call__(self, factory: ClientFactory, share: Pass) -> Iterator[DataObject]:
        n = len(self.catalogue)
        order = Permutation(n, self.seed, share.epoch)
        entries = (self.catalogue[order(p)] for p in range(share.first, n, share.count))
        requests = ((e.uri, e.label, e.size) for e in entries)
        return streamed_objects(factory, factory.get().stream_objects(requests))
