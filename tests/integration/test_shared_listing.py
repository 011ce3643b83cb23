"""One listing per pass for all the DataLoader workers of a process: LIST requests counted on
the server, objects streaming before the listing ends, a listing error reaching every worker,
and a lister killed mid-listing replaced by a reader."""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from conftest import OssServer, python_child
from osstorchconnector import DataObject, OssIterableDataset
from osstorchconnector.exceptions import OssNotFoundError

torch = pytest.importorskip("torch")
DataLoader = torch.utils.data.DataLoader

# Three pages of 1,000 (the lister's max-keys), so a listing is three LIST requests.
KEYS = [f"l/{i:05d}" for i in range(2_345)]
PAGES = 3


def key_of(obj: DataObject) -> str:
    return obj.key


@pytest.fixture
def options(oss_server: OssServer, tmp_path: Path) -> dict[str, Any]:
    return oss_server.dataset_options(tmp_path, {})


@pytest.fixture
def listed_bucket(oss_server: OssServer, bucket: str) -> str:
    oss_server.put_random(bucket, dict.fromkeys(KEYS, 10))
    return bucket


def lists(oss_server: OssServer) -> int:
    counted = oss_server.stats()["operations"].get("ListObjectsV2", {})
    return int(counted.get("requests", 0))


@pytest.mark.parametrize(
    ("context", "persistent"), [("fork", False), ("spawn", False), ("fork", True)]
)
def test_workers_of_a_process_list_once_per_epoch(
    oss_server: OssServer,
    listed_bucket: str,
    options: dict[str, Any],
    context: str,
    persistent: bool,
) -> None:
    ds = OssIterableDataset.from_prefix(f"oss://{listed_bucket}/l/", transform=key_of, **options)
    loader = DataLoader(
        ds,
        batch_size=50,
        num_workers=3,
        collate_fn=list,
        multiprocessing_context=context,
        persistent_workers=persistent,
    )
    oss_server.reset_stats()
    for epoch in range(2):
        got = [k for batch in loader for k in batch]
        assert Counter(got) == Counter(KEYS), f"epoch {epoch}"
        assert lists(oss_server) == PAGES * (epoch + 1)  # one listing per epoch, not three


def test_objects_stream_before_the_listing_ends(
    oss_server: OssServer, listed_bucket: str, options: dict[str, Any]
) -> None:
    ds = OssIterableDataset.from_prefix(f"oss://{listed_bucket}/l/", transform=key_of, **options)
    loader = DataLoader(ds, batch_size=10, num_workers=2, collate_fn=list)
    oss_server.set_faults(scope="list", p_stall=1.0, stall_s=1.0)  # each page takes 1 s
    try:
        oss_server.reset_stats()
        batches = iter(loader)
        first = next(batches)
        lists_at_first_batch = lists(oss_server)
        rest = [k for batch in batches for k in batch]
    finally:
        oss_server.clear_faults()
    assert Counter(first + rest) == Counter(KEYS)
    # Pages are counted once answered: the first batch came with one or two of three.
    assert lists_at_first_batch < PAGES
    assert lists(oss_server) == PAGES


def test_a_listing_error_reaches_the_workers(
    oss_server: OssServer, options: dict[str, Any]
) -> None:
    ds = OssIterableDataset.from_prefix("oss://no-such-bucket-here/p/", **options)
    loader = DataLoader(ds, batch_size=10, num_workers=2, collate_fn=list)
    with pytest.raises(OssNotFoundError, match="no-such-bucket-here"):
        list(loader)


LISTER = """
import sys
from osstorchconnector import _shared_listing
from osstorchconnector._client import ClientFactory
client = ClientFactory({endpoint!r}, region={region!r}, cred_path={cred!r}).get()
shared = _shared_listing.SharedListing()
shared.token = {token!r}
shared.directory = {directory!r}
for n, _ in enumerate(shared.entries(client, {bucket!r}, "l/", 0, 0, 1)):
    if n == 0:
        print("listing", flush=True)
"""


def test_a_killed_lister_is_replaced(
    oss_server: OssServer, listed_bucket: str, options: dict[str, Any], tmp_path: Path
) -> None:
    from osstorchconnector import _shared_listing
    from osstorchconnector._client import ClientFactory

    token = "killedlister"
    cred = str(oss_server.write_cred_file(tmp_path / "c.json"))
    script = LISTER.format(
        endpoint=oss_server.endpoint,
        region=oss_server.region,
        cred=cred,
        token=token,
        bucket=listed_bucket,
        directory=str(tmp_path),
    )
    # Every page takes 2 s: the lister is killed once it has written the first.
    oss_server.set_faults(scope="list", p_stall=1.0, stall_s=2.0)
    child = python_child(script)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "listing", child.communicate()[1][-2000:]
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.communicate(timeout=10)
        oss_server.clear_faults()
    oss_server.settled_stats(10)  # the killed lister's stalled request, counted when answered
    oss_server.reset_stats()
    client = ClientFactory(oss_server.endpoint, region=oss_server.region, cred_path=cred).get()
    reader = _shared_listing.SharedListing()
    reader.token = token
    reader.directory = str(tmp_path)
    got = [uri for uri, _, _ in reader.entries(client, listed_bucket, "l/", 0, 0, 1)]
    assert got == [f"oss://{listed_bucket}/{k}" for k in KEYS]
    assert lists(oss_server) == PAGES - 1  # resumed from the page the killed lister wrote


def test_the_listing_process_reads_each_page_as_its_lister_writes_it(
    oss_server: OssServer,
    listed_bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worker that lists also reads: it is woken by its lister's pages, not by a polling
    clock (which here would first look again after 10 minutes)."""
    from osstorchconnector import _shared_listing
    from osstorchconnector._client import ClientFactory

    monkeypatch.setattr(_shared_listing, "_WAIT_FIRST_S", 600.0)
    monkeypatch.setattr(_shared_listing, "_WAIT_MAX_S", 600.0)
    cred = str(oss_server.write_cred_file(tmp_path / "c.json"))
    client = ClientFactory(oss_server.endpoint, region=oss_server.region, cred_path=cred).get()
    shared = _shared_listing.SharedListing()
    shared.directory = str(tmp_path)
    got: list[str] = []

    def read() -> None:
        got.extend(uri for uri, _, _ in shared.entries(client, listed_bucket, "l/", 0, 0, 1))

    # Each page takes 0.3 s, so the reader finds the file without its next page every time.
    oss_server.set_faults(scope="list", p_stall=1.0, stall_s=0.3)
    try:
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout=60)
    finally:
        oss_server.clear_faults()
    assert not reader.is_alive(), f"the reader still waits after {len(got)} entries"
    assert got == [f"oss://{listed_bucket}/{k}" for k in KEYS]
