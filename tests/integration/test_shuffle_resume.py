"""Seeded shuffle of iterable datasets (a global permutation: the same order in any worker
layout, another each epoch) and mid-epoch resume with torchdata's StatefulDataLoader (the
rest of the epoch, nothing repeated, nothing skipped, nothing fetched twice)."""

from __future__ import annotations

import io
import tarfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.utils.data
from torchdata.stateful_dataloader import StatefulDataLoader

from conftest import OssServer
from osstorchconnector import DataObject, OssIterableDataset, generate_tar_archive
from osstorchconnector._shuffle import Permutation

N = 45


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 1000, 4097])
def test_permutation_is_a_bijection_keyed_by_seed_and_epoch(n: int) -> None:
    orders = {(s, e): [Permutation(n, s, e)(i) for i in range(n)] for s in (0, 1) for e in (0, 1)}
    assert all(sorted(o) == list(range(n)) for o in orders.values())
    if n >= 7:
        assert len({tuple(o) for o in orders.values()}) == 4  # every key its own order
    assert orders[(1, 1)] == [Permutation(n, 1, 1)(i) for i in range(n)]  # a pure function


def key_of(obj: DataObject) -> str:
    return obj.key


@pytest.fixture
def uris(oss_server: OssServer, bucket: str) -> list[str]:
    keys = [f"s/{i:03d}" for i in range(N)]
    oss_server.put_random(bucket, {k: 50 + i for i, k in enumerate(keys)})
    return [f"oss://{bucket}/{k}" for k in keys]


@pytest.fixture
def conn(oss_server: OssServer, tmp_path: Path) -> dict[str, Any]:
    return {
        "endpoint": oss_server.endpoint,
        "region": oss_server.region,
        "cred_path": str(oss_server.write_cred_file(tmp_path / "cred.json")),
    }


def keys_through(ds: Any, workers: int) -> list[str]:
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers)
    return list(loader)


@pytest.mark.parametrize("factory", ["objects", "prefix"])
def test_shuffle_is_a_global_order_per_seed_and_epoch(
    uris: list[str], conn: dict[str, Any], bucket: str, factory: str
) -> None:
    def make(seed: int) -> OssIterableDataset:
        if factory == "prefix":
            return OssIterableDataset.from_prefix(
                f"oss://{bucket}/s/", transform=key_of, shuffle=True, seed=seed, **conn
            )
        return OssIterableDataset.from_objects(
            uris, transform=key_of, shuffle=True, seed=seed, **conn
        )

    ds = make(3)
    first = keys_through(ds, 0)
    assert Counter(first) == Counter(u.split("/", 3)[3] for u in uris)
    assert first != sorted(first)
    # the same order with two workers (batch_size=None alternates them, position by position)
    assert keys_through(ds, 2) == first
    assert keys_through(make(3), 0) == first  # another run, same seed and epoch
    ds.set_epoch(1)
    second = keys_through(ds, 2)
    assert second != first and sorted(second) == sorted(first)
    assert keys_through(make(4), 0) != first
    # Persistent workers keep the epoch they started with and advance it by one each pass:
    # consecutive epochs get the same orders as with workers started afresh.
    ds.set_epoch(0)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=None, num_workers=2, persistent_workers=True
    )
    assert [list(loader) for _ in range(2)] == [first, second]


# torchdata 0.11 calls torch.set_vital, deprecated in torch 2.15
@pytest.mark.filterwarnings("ignore:'set_vital' is deprecated:UserWarning")
@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("shuffle", [False, True])
def test_resume_mid_epoch_fetches_only_the_rest(
    oss_server: OssServer,
    uris: list[str],
    conn: dict[str, Any],
    bucket: str,
    workers: int,
    shuffle: bool,
) -> None:
    def loader() -> StatefulDataLoader:
        ds = OssIterableDataset.from_prefix(
            f"oss://{bucket}/s/", transform=key_of, shuffle=shuffle, seed=9, **conn
        )
        return StatefulDataLoader(ds, batch_size=4, num_workers=workers)

    first = loader()
    seen: list[str] = []
    for i, batch in enumerate(first):
        seen += batch
        if i == 4:
            state = first.state_dict()
            break
    del first
    wait_idle(oss_server)
    oss_server.reset_stats()
    second = loader()
    second.load_state_dict(state)
    rest = [k for batch in second for k in batch]
    assert Counter(seen + rest) == Counter(u.split("/", 3)[3] for u in uris)  # once each
    wait_idle(oss_server)
    gets = oss_server.stats()["requests_by_method"].get("GET", 0)
    assert gets <= len(rest) + 2, (gets, len(rest))  # not a replay of the whole epoch (+ lists)


def wait_idle(server: OssServer) -> None:
    deadline = time.monotonic() + 5
    while server.stats().get("in_flight", 0) and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.mark.filterwarnings("ignore:'set_vital' is deprecated:UserWarning")
@pytest.mark.parametrize("workers", [0, 2])
def test_resume_a_shuffled_tar_pass_reads_only_the_rest(
    oss_server: OssServer, bucket: str, conn: dict[str, Any], tmp_path: Path, workers: int
) -> None:
    names = [f"t/{i:03d}" for i in range(120)]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = MEMBER
            tar.addfile(info, io.BytesIO(name.encode().ljust(MEMBER, b".")))
    (tmp_path / "a.tar").write_bytes(buf.getvalue())
    generate_tar_archive("", "", "", str(tmp_path / "a.tar"), str(tmp_path / "a.idx"), "", True)
    oss_server.put(bucket, "a.tar", buf.getvalue())
    oss_server.put(bucket, "a.idx", (tmp_path / "a.idx").read_bytes())

    def loader() -> StatefulDataLoader:
        # No seed: the order is drawn per pass, so only the saved state can bring it back.
        ds = OssIterableDataset.from_tar(
            f"oss://{bucket}/a.tar",
            f"oss://{bucket}/a.idx",
            transform=key_of,
            shuffle=True,
            shuffle_chunk_size=7,
            **conn,
        )
        return StatefulDataLoader(ds, batch_size=4, num_workers=workers)

    first = loader()
    seen: list[str] = []
    for i, batch in enumerate(first):
        seen += batch
        if i == 6:
            state = first.state_dict()
            break
    else:
        pytest.fail("the epoch ended before the state was taken")
    del first
    assert seen != sorted(seen)  # shuffled
    wait_idle(oss_server)
    oss_server.reset_stats()
    second = loader()
    second.load_state_dict(state)
    rest = [k for batch in second for k in batch]
    assert Counter(seen + rest) == Counter(names)  # nothing repeated, nothing skipped
    wait_idle(oss_server)
    sent = oss_server.stats()["bytes_sent"]
    index = (tmp_path / "a.idx").stat().st_size
    # Read again: the index, and the rest's members (each 512 B of header + its body).
    assert sent <= index + len(rest) * (512 + MEMBER) + 4096, (sent, len(rest))


MEMBER = 1024


RESUMED = """
import json, sys, torch, warnings
warnings.filterwarnings("ignore")
from torchdata.stateful_dataloader import StatefulDataLoader
from osstorchconnector import OssIterableDataset

def key_of(obj):
    return obj.key

conn, uri, state_path = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
ds = OssIterableDataset.from_prefix(uri, transform=key_of, shuffle=True, seed=5, **conn)
loader = StatefulDataLoader(ds, batch_size=4, num_workers=2)
loader.load_state_dict(torch.load(state_path, weights_only=False))
print(json.dumps([k for batch in loader for k in batch]))
"""


@pytest.mark.filterwarnings("ignore:'set_vital' is deprecated:UserWarning")
def test_resume_in_a_new_process(
    oss_server: OssServer, uris: list[str], conn: dict[str, Any], bucket: str, tmp_path: Path
) -> None:
    import json
    import subprocess
    import sys

    ds = OssIterableDataset.from_prefix(
        f"oss://{bucket}/s/", transform=key_of, shuffle=True, seed=5, **conn
    )
    loader = StatefulDataLoader(ds, batch_size=4, num_workers=2)
    seen: list[str] = []
    for i, batch in enumerate(loader):
        seen += batch
        if i == 3:
            torch.save(loader.state_dict(), tmp_path / "state.pt")  # with the checkpoint
            break
    del loader
    wait_idle(oss_server)
    oss_server.reset_stats()
    args = [json.dumps(conn), f"oss://{bucket}/s/", str(tmp_path / "state.pt")]
    done = subprocess.run(
        [sys.executable, "-c", RESUMED, *args], capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rest = json.loads(done.stdout.strip().splitlines()[-1])
    # nothing repeated, nothing skipped
    assert Counter(seen + rest) == Counter(u.split("/", 3)[3] for u in uris)
    wait_idle(oss_server)
    gets = oss_server.stats()["requests_by_method"].get("GET", 0)
    assert gets <= len(rest) + 2, (gets, len(rest))  # the rest only (+ the listing)
