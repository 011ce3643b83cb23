"""Objects up to prefetchUnitMB arrive whole: the pipeline writes each body straight into the
`bytes` that `read()` then returns, so reading them copies nothing more — through retries,
corrupt bodies and abandoned loops alike. (Over an http:// endpoint, our own HTTP path reads
every such body from the socket into its `bytes`; through reqwest only bodies of 1 MiB and
more are lent.) Larger objects of a listed size, up to twice prefetchMB, get one `bytes` too,
each part written into its place, until the consumer reads one of them in pieces."""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import OssServer
from osstorchconnector import OssError, OssIterableDataset

MIB = 1024 * 1024
SIZES = {
    "whole/a-below": MIB - 1,  # small: lent too on our own HTTP path
    "whole/b-one": MIB,
    "whole/c-odd": MIB + 12_345,
    "whole/d-three": 3 * MIB,
    "whole/e-part": 4 * MIB,  # exactly prefetchUnitMB
    "whole/f-beyond": 4 * MIB + 1,  # in parts
}


@pytest.fixture
def objects(oss_server: OssServer, bucket: str) -> dict[str, bytes]:
    return oss_server.put_random(bucket, SIZES)


@pytest.fixture
def options(oss_server: OssServer, tmp_path: Path) -> dict[str, Any]:
    return oss_server.dataset_options(
        tmp_path, {"datasetConfig": {"prefetchUnitMB": 4, "prefetchMB": 16}}
    )


def datasets(bucket: str, options: dict[str, Any]) -> list[OssIterableDataset]:
    uris = [f"oss://{bucket}/{k}" for k in SIZES]
    return [
        OssIterableDataset.from_prefix(f"oss://{bucket}/whole/", **options),  # sizes listed
        OssIterableDataset.from_objects(uris, **options),  # sizes unknown until fetched
    ]


def test_whole_objects_come_back_in_the_bytes_they_were_written_to(
    bucket: str, objects: dict[str, bytes], options: dict[str, Any]
) -> None:
    listed, named = datasets(bucket, options)
    for obj in listed:
        first = obj.read()
        assert first == objects[obj.key], obj.key
        obj.seek(0)
        again = obj.read()
        assert again == first
        # The same object both times: nothing was copied out of a buffer of ours.
        assert (again is first) == (obj.size > 0), obj.key
    # Without a listing the size is learnt from the first answer: read as before, same bytes.
    assert [(o.key, o.read()) for o in named] == list(objects.items())


def test_whole_objects_survive_broken_and_corrupt_bodies(
    oss_server: OssServer,
    bucket: str,
    objects: dict[str, bytes],
    options: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Corrupt bodies only where the object arrives whole: those are fetched again, whereas an
    # object read in parts fails at its last part (test_large_objects.py).
    phases = [
        {"keys_prefix": "whole/", "p_reset": 0.2, "p_truncate": 0.2, "p_503": 0.1},
        {"keys_prefix": "whole/d-three", "p_corrupt": 0.3, "p_truncate": 0.2},
    ]
    caplog.set_level(logging.INFO, logger="osstorchconnector")
    for seed, faults in enumerate(phases):
        oss_server.set_faults(seed=seed, bucket=bucket, **faults)
        try:
            for _ in range(3):
                for ds in datasets(bucket, options):
                    assert [(o.key, o.read()) for o in ds] == list(objects.items())
            assert oss_server.faults()["state"]["faultable_requests"] > 5
        finally:
            oss_server.clear_faults()
    assert "CRC-64/XZ mismatch" in caplog.text, "a corrupt body was caught and fetched again"


def test_an_abandoned_loop_lets_its_lent_memory_go(
    oss_server: OssServer, bucket: str, objects: dict[str, bytes], options: dict[str, Any]
) -> None:
    oss_server.control("POST", "delay", {"delay_ms": 30})  # so that GETs are under way
    try:
        for _ in range(5):
            for obj in datasets(bucket, options)[0]:
                assert obj.read(10) == objects[obj.key][:10]
                break  # the rest is still being written into memory lent to the pipeline
            gc.collect()
    finally:
        oss_server.control("POST", "delay", {"delay_ms": 0})
    listed = datasets(bucket, options)[0]
    assert [(o.key, o.read()) for o in listed] == list(objects.items())


def test_a_body_corrupt_at_every_attempt_fails_naming_the_object(
    oss_server: OssServer, bucket: str, objects: dict[str, bytes], tmp_path: Path
) -> None:
    options = oss_server.dataset_options(
        tmp_path,
        {"datasetConfig": {"prefetchUnitMB": 4}, "retryConfig": {"maxAttempts": 2}},
    )
    oss_server.set_faults(seed=1, bucket=bucket, keys_prefix="whole/d-three", p_corrupt=1.0)
    try:
        ds = OssIterableDataset.from_objects([f"oss://{bucket}/whole/d-three"], **options)
        with pytest.raises(OssError, match="CRC-64/XZ mismatch") as info:
            list(ds)
    finally:
        oss_server.clear_faults()
    assert (info.value.bucket, info.value.key) == (bucket, "whole/d-three")


def test_large_objects_stop_coming_back_in_one_bytes_once_one_is_read_in_pieces(
    oss_server: OssServer, bucket: str, options: dict[str, Any]
) -> None:
    """A consumer that reads large objects in pieces would hold each one whole in lent memory
    until done with it: after its first such read the stream lends large objects nothing, and
    the objects already lent memory read the same bytes."""
    sizes = {f"split/{name}": 9 * MIB + i for i, name in enumerate("abcdef")}
    content = oss_server.put_random(bucket, sizes)
    oss_server.control("POST", "delay", {"delay_ms": 20})  # so that later objects are under way
    try:
        it = iter(OssIterableDataset.from_prefix(f"oss://{bucket}/split/", **options))
        first = next(it)
        whole = first.read()
        first.seek(0)
        assert whole == content[first.key] and first.read() is whole, "lent, read whole"
        second = next(it)
        pieces = b"".join(iter(lambda: second.read(MIB), b""))
        assert pieces == content[second.key], "read in pieces"
        for obj in it:
            data = obj.read()
            obj.seek(0)
            assert data == content[obj.key], obj.key
            assert obj.read() is not data, f"{obj.key}: read through part buffers, not lent"
    finally:
        oss_server.control("POST", "delay", {"delay_ms": 0})


@pytest.mark.parametrize("size", [3 * MIB, 9 * MIB], ids=["whole", "in-parts"])
def test_an_object_read_and_dropped_is_let_go_before_the_next_one_arrives(
    oss_server: OssServer, bucket: str, options: dict[str, Any], size: int
) -> None:
    """Once the loop asks for the next object, nothing of the dataset's keeps the previous
    object's bytes: its memory is free while the next one is still on its way (the next one's
    parts would otherwise fault in fresh memory beside it)."""
    content = oss_server.put_random(bucket, {"drop/a": size, "drop/b": MIB})
    # The next object answers only after a while, so the loop waits in next() meanwhile.
    oss_server.set_faults(bucket=bucket, keys_prefix="drop/b", p_stall=1.0, stall_s=1.5)
    try:
        it = iter(OssIterableDataset.from_prefix(f"oss://{bucket}/drop/", **options))
        first = next(it)
        data = first.read()
        assert data == content["drop/a"]
        del first
        held_while_waiting: list[int] = []

        def watch() -> None:
            time.sleep(0.5)  # next() below is waiting for the stalled object by then
            held_while_waiting.append(sys.getrefcount(data) - 2)  # minus `data` and the arg

        watcher = threading.Thread(target=watch)
        watcher.start()
        second = next(it)
        watcher.join()
        assert second.read() == content["drop/b"]
    finally:
        oss_server.clear_faults()
    assert held_while_waiting == [0], "references to the previous object's bytes beside ours"


def _read_whole(obj: Any) -> bytes:
    return bytes(obj.read())


def test_each_dataloader_worker_fetches_one_large_object_at_a_time(
    oss_server: OssServer, bucket: str, options: dict[str, Any]
) -> None:
    """With several DataLoader workers, a worker on a large object read whole asks nothing of
    its next object until its consumer moves on (the workers already fetch side by side, and
    fetching ahead lands the next object in fresh memory beside the current one)."""
    torch = pytest.importorskip("torch")
    sizes = {f"ahead/{i}": 9 * MIB + i for i in range(4)}  # 3 parts each; worker 0: 0 and 2
    content = oss_server.put_random(bucket, sizes)
    # ahead/0 answers late: worker 0 is on it while worker 1 reads ahead/1 and ahead/3.
    oss_server.set_faults(bucket=bucket, keys_prefix="ahead/0", p_stall=1.0, stall_s=4)
    gets_answered: list[int] = []

    def answered() -> int:
        ops = oss_server.control("GET", "stats?timeline=0")["operations"]
        return int(ops.get("GetObject", {}).get("requests", 0))

    def watch() -> None:
        # Worker 1's six parts answered, then a while longer: any part of ahead/2 asked for
        # by then (worker 0 fetching ahead) has been answered too.
        deadline = time.monotonic() + 3
        while answered() < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        gets_answered.append(answered())

    try:
        oss_server.reset_stats()
        dataset = OssIterableDataset.from_prefix(
            f"oss://{bucket}/ahead/", transform=_read_whole, **options
        )
        loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=2)
        watcher = threading.Thread(target=watch)
        watcher.start()
        got = list(loader)
        watcher.join()
    finally:
        oss_server.clear_faults()
    assert sorted(got) == sorted(content.values())
    # Worker 1's 6 parts; ahead/0's 3 are still stalled; ahead/2 not asked for yet.
    assert gets_answered == [6]
