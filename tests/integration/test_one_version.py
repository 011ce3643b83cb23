"""Every byte of a DataObject comes from one version of its object: an object replaced while it
is being read raises OssObjectChangedError, never returns bytes of two versions."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import pytest

from conftest import OssServer
from osstorchconnector import DataObject, OssError, OssIterableDataset, OssObjectChangedError

MIB = 1024 * 1024
BIG = 6 * MIB + 5  # several 1 MiB parts


@pytest.fixture
def options(oss_server: OssServer, tmp_path: Path) -> dict[str, Any]:
    return oss_server.dataset_options(
        tmp_path,
        {"datasetConfig": {"prefetchUnitMB": 1, "prefetchMB": 8, "prefetchConcurrency": 4}},
    )


def kept_after_the_stream_moved_on(
    bucket: str, options: dict[str, Any], *, from_listing: bool
) -> DataObject:
    """The big object, 1 MiB of it read, with the stream advanced past it."""
    uris = [f"oss://{bucket}/v/big", f"oss://{bucket}/v/small"]
    if from_listing:
        ds = OssIterableDataset.from_prefix(f"oss://{bucket}/v/", transform=lambda o: o, **options)
    else:
        ds = OssIterableDataset.from_objects(uris, transform=lambda o: o, **options)
    it = iter(ds)
    obj = next(it)
    assert obj.key == "v/big"
    assert len(obj.read(MIB)) == MIB
    assert next(it).key == "v/small"  # the stream moved past the big object
    return obj


@pytest.mark.parametrize("from_listing", [True, False], ids=["listed", "named"])
def test_a_replaced_object_raises_instead_of_mixing_versions(
    oss_server: OssServer, bucket: str, options: dict[str, Any], from_listing: bool
) -> None:
    old = os.urandom(BIG)
    oss_server.put(bucket, "v/big", old)
    oss_server.put(bucket, "v/small", b"x")
    obj = kept_after_the_stream_moved_on(bucket, options, from_listing=from_listing)
    copied, pickled = obj.copy(), pickle.loads(pickle.dumps(obj))
    assert obj.etag and copied.etag == obj.etag == pickled.etag

    oss_server.put(bucket, "v/big", os.urandom(BIG))  # replaced, same size

    with pytest.raises(OssObjectChangedError) as raised:
        obj.read()  # the rest at once: parallel ranged parts into the result
    error = raised.value
    assert isinstance(error, OssError)
    assert (error.bucket, error.key, error.status) == (bucket, "v/big", 412)
    assert "changed while being read" in str(error)
    assert f"oss://{bucket}/v/big" in str(error)
    # Small reads (one range each), a copy and an unpickled object are pinned too.
    with pytest.raises(OssObjectChangedError):
        copied.seek(2 * MIB)
        copied.read(100)
    with pytest.raises(OssObjectChangedError):
        pickled.read()


def test_an_unchanged_object_reads_whole_after_the_stream_moved_on(
    oss_server: OssServer, bucket: str, options: dict[str, Any]
) -> None:
    data = os.urandom(BIG)
    oss_server.put(bucket, "v/big", data)
    oss_server.put(bucket, "v/small", b"x")
    obj = kept_after_the_stream_moved_on(bucket, options, from_listing=True)
    assert obj.read() == data[MIB:]
    obj.seek(3 * MIB + 1)
    assert obj.read(10) == data[3 * MIB + 1 : 3 * MIB + 11]


def test_a_replaced_object_fails_its_streamed_parts_too(
    oss_server: OssServer, bucket: str, options: dict[str, Any]
) -> None:
    """Replaced while the stream is still on it, between its first part and the rest: the
    parts not yet fetched are refused, whatever was buffered before stays the old version."""
    old = os.urandom(BIG)
    oss_server.put(bucket, "v/big", old)
    ds = OssIterableDataset.from_objects(
        [f"oss://{bucket}/v/big"], transform=lambda o: o, **options
    )
    obj = next(iter(ds))
    first = obj.read(MIB)
    assert first == old[:MIB]
    oss_server.put(bucket, "v/big", os.urandom(BIG))
    got = bytearray(first)
    with pytest.raises(OssObjectChangedError):
        while piece := obj.read(MIB):
            got += piece
    assert bytes(got) == old[: len(got)], "bytes before the error are all the old version's"
