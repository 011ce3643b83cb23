"""OssMapDataset: random access by index, batches fetched at once, DataLoader with shuffle and
workers, manifests, missing objects and pickling, against the OSS test server."""

from __future__ import annotations

import pickle
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import alibabacloud_oss_v2 as oss
import pytest
import torch.utils.data

from conftest import OssServer, start_oss_server, stop_oss_server
from osstorchconnector import (
    DataObject,
    OssMapDataset,
    OssNotFoundError,
    imagenet_manifest_parser,
)


@pytest.fixture
def opts(oss_server: OssServer, tmp_path: Path) -> dict[str, Any]:
    return {
        "endpoint": oss_server.endpoint,
        "region": oss_server.region,
        "cred_path": str(oss_server.write_cred_file(tmp_path / "cred.json")),
    }


@pytest.fixture
def seeded(oss_server: OssServer, bucket: str) -> dict[str, bytes]:
    """40 objects of assorted sizes under data/, one of zero bytes; one object outside."""
    sizes = {f"data/{i:03d}.bin": random.Random(i).randrange(1, 50_000) for i in range(40)}
    sizes["data/017.bin"] = 0
    oss_server.put(bucket, "other/x.bin", b"not in the dataset")
    return oss_server.put_random(bucket, sizes)


def key_and_bytes(obj: DataObject) -> tuple[str, bytes]:
    return obj.key, obj.read()


def test_prefix_random_access_and_batches(
    bucket: str, seeded: dict[str, bytes], opts: dict[str, Any]
) -> None:
    ds = OssMapDataset.from_prefix(f"oss://{bucket}/data/", **opts)
    keys = sorted(seeded)
    assert len(ds) == len(seeded)  # the zero-byte object is part of the dataset
    for i in (0, 17, 39, -1, -40):
        obj = ds[i]
        assert obj.key == keys[i]
        assert obj.size == len(seeded[keys[i]])
        assert obj.read() == seeded[keys[i]]
    batch = [5, 33, 0, 17, 5, -2, 12]
    got = ds.__getitems__(batch)
    assert [o.key for o in got] == [keys[i] for i in batch]
    assert [o.read() for o in got] == [seeded[keys[i]] for i in batch]
    assert ds.__getitems__([]) == []
    assert [o.key for o in ds] == keys  # iteration, batch by batch


@pytest.mark.parametrize("index", [40, -41, 10**9])
def test_out_of_range_is_index_error(
    bucket: str, seeded: dict[str, bytes], opts: dict[str, Any], index: int
) -> None:
    ds = OssMapDataset.from_prefix(f"oss://{bucket}/data/", **opts)
    with pytest.raises(IndexError, match=str(index)):
        ds[index]
    with pytest.raises(IndexError):
        ds.__getitems__([0, index])


def test_missing_object_raises_naming_the_key(
    oss_server: OssServer, bucket: str, opts: dict[str, Any]
) -> None:
    oss_server.put(bucket, "a.bin", b"a")
    uris = [f"oss://{bucket}/a.bin", f"oss://{bucket}/gone.bin"]
    ds = OssMapDataset.from_objects(uris, **opts)
    assert len(ds) == 2  # nothing requested yet
    assert ds[0].read() == b"a"
    with pytest.raises(OssNotFoundError, match=r"gone\.bin"):
        ds.__getitems__([0, 1])
    with pytest.raises(ValueError, match="empty"):
        OssMapDataset.from_objects([], **opts)


def test_manifest_labels(oss_server: OssServer, bucket: str, opts: dict[str, Any]) -> None:
    data = oss_server.put_random(bucket, {f"img/{i}.png": 100 + i for i in range(6)})
    manifest = "".join(f"img/{i}.png\tclass{i % 2}\n" for i in range(6)).encode()
    oss_server.put(bucket, "manifest.tsv", manifest)
    ds = OssMapDataset.from_manifest_file(
        f"oss://{bucket}/manifest.tsv", imagenet_manifest_parser, f"oss://{bucket}/", **opts
    )
    got = [(o.key, o.label, o.read()) for o in ds.__getitems__([4, 1])]
    assert got == [
        ("img/4.png", "class0", data["img/4.png"]),
        ("img/1.png", "class1", data["img/1.png"]),
    ]


def test_dataset_and_items_pickle(
    bucket: str, seeded: dict[str, bytes], opts: dict[str, Any]
) -> None:
    ds = OssMapDataset.from_prefix(f"oss://{bucket}/data/", **opts)
    clone = pickle.loads(pickle.dumps(ds))
    assert len(clone) == len(ds)
    item = pickle.loads(pickle.dumps(clone[3]))
    assert item.read() == seeded[sorted(seeded)[3]]


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_dataloader_shuffle_workers_exactly_once(
    bucket: str, seeded: dict[str, bytes], opts: dict[str, Any], context: str
) -> None:
    ds = OssMapDataset.from_prefix(f"oss://{bucket}/data/", transform=key_and_bytes, **opts)
    loader = torch.utils.data.DataLoader(
        ds,
        batch_size=6,
        shuffle=True,
        num_workers=2,
        collate_fn=list,
        multiprocessing_context=context,
        persistent_workers=True,
    )
    orders = []
    for _epoch in range(2):
        seen = [item for batch in loader for item in batch]
        assert Counter(k for k, _ in seen) == Counter(seeded.keys())  # each exactly once
        assert all(v == seeded[k] for k, v in seen)
        orders.append([k for k, _ in seen])
    assert orders[0] != orders[1] and orders[0] != sorted(seeded)  # shuffled, anew each epoch


def test_batch_is_fetched_concurrently(tmp_path: Path) -> None:
    """Against a server that delays every response by 200 ms, a batch of 32 objects takes
    about one delay, not 32: the requests are in flight together."""
    server = start_oss_server(tmp_path / "root", "--delay-ms", "200")
    try:
        bucket = "slow-bucket"
        server.sdk_client().put_bucket(oss.PutBucketRequest(bucket=bucket))
        server.put_random(bucket, {f"k/{i:02d}": 1000 + i for i in range(32)})
        ds = OssMapDataset.from_prefix(
            f"oss://{bucket}/k/",
            endpoint=server.endpoint,
            region=server.region,
            cred_path=str(server.write_cred_file(tmp_path / "cred.json")),
        )
        server.reset_stats()
        start = time.monotonic()
        got = ds.__getitems__(list(range(31, -1, -1)))
        elapsed = time.monotonic() - start
        assert [o.key for o in got] == [f"k/{i:02d}" for i in range(31, -1, -1)]
        assert server.stats()["max_in_flight"] >= 16
        assert elapsed < 32 * 0.2 / 4, elapsed  # one at a time would take 6.4 s
    finally:
        stop_oss_server(server)


def test_catalogue_of_many_keys_is_compact() -> None:
    """The catalogue holds keys in flat buffers: 100,000 keys pickle to little more than their
    bytes, and every entry comes back."""
    from osstorchconnector._catalogue import Catalogue

    keys = [f"train/{i % 1000:04d}/{i:08d}.jpg" for i in range(100_000)]
    cat = Catalogue.of(("b", k, i, "") for i, k in enumerate(keys))
    blob = pickle.dumps(cat, protocol=pickle.HIGHEST_PROTOCOL)
    key_bytes = sum(len(k) for k in keys)
    assert len(blob) < key_bytes + 100_000 * 8 * 4  # keys + four 8-byte columns at most
    back = pickle.loads(blob)
    for i in (0, 1, 4_999, 99_999):
        e = back[i]
        assert (e.bucket, e.key, e.size, e.label) == ("b", keys[i], i, "")
