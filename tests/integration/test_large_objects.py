"""Objects larger than prefetchUnitMB: fetched as ranged parts, read in pieces, read after the
iterator moved on, copied and pickled — bytes always equal to the source."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import OssServer, interrupt, python_child, start_oss_server, stop_oss_server
from osstorchconnector import DataObject, OssError, OssIterableDataset

MIB = 1024 * 1024
SIZES = {
    "big/a-small": 1000,
    "big/b-exact": MIB,
    "big/c-plus-one": MIB + 1,
    "big/d-three-and-half": 3 * MIB + MIB // 2,
    "big/e-empty": 0,
    "big/f-seven": 7 * MIB + 3,
}


@pytest.fixture
def big(oss_server: OssServer, bucket: str) -> dict[str, bytes]:
    return oss_server.put_random(bucket, SIZES)


@pytest.fixture
def small_parts(oss_server: OssServer, tmp_path: Path) -> dict[str, Any]:
    return oss_server.dataset_options(
        tmp_path,
        {"datasetConfig": {"prefetchUnitMB": 1, "prefetchMB": 8, "prefetchConcurrency": 4}},
    )


def datasets(bucket: str, options: dict[str, Any]) -> list[OssIterableDataset]:
    uris = [f"oss://{bucket}/{k}" for k in SIZES]
    return [
        OssIterableDataset.from_prefix(f"oss://{bucket}/big/", **options),  # sizes from listing
        OssIterableDataset.from_objects(uris, **options),  # sizes learnt from the first part
    ]


def test_whole_reads(bucket: str, big: dict[str, bytes], small_parts: dict[str, Any]) -> None:
    for ds in datasets(bucket, small_parts):
        got = [(o.key, o.size, o.read()) for o in ds]
        assert got == [(k, len(v), v) for k, v in big.items()]


def test_piecewise_reads_and_readinto(
    bucket: str, big: dict[str, bytes], small_parts: dict[str, Any]
) -> None:
    rng = random.Random(5)
    for ds in datasets(bucket, small_parts):
        for obj in ds:
            pieces = []
            while piece := obj.read(rng.choice([1, 1000, 300_000, MIB + 7])):
                pieces.append(piece)
            assert b"".join(pieces) == big[obj.key], obj.key
        for obj in ds:
            buf = bytearray(777_777)
            h = hashlib.sha256()
            while n := obj.readinto(buf):
                h.update(buf[:n])
            assert h.digest() == hashlib.sha256(big[obj.key]).digest(), obj.key


def test_seeks_within_a_streaming_object(
    bucket: str, big: dict[str, bytes], small_parts: dict[str, Any]
) -> None:
    data = big["big/f-seven"]
    for ds in datasets(bucket, small_parts):
        obj = next(o for o in ds if o.key == "big/f-seven")
        assert obj.read(10) == data[:10]
        obj.seek(5 * MIB)  # forward past streamed parts
        assert obj.read(100) == data[5 * MIB : 5 * MIB + 100]
        obj.seek(MIB - 5)  # backward: by range
        assert obj.read(10) == data[MIB - 5 : MIB + 5]
        obj.seek(-3, os.SEEK_END)
        assert obj.read() == data[-3:]


def test_objects_kept_after_the_loop_read_by_range(
    oss_server: OssServer, bucket: str, big: dict[str, bytes], small_parts: dict[str, Any]
) -> None:
    for ds in datasets(bucket, small_parts):
        kept = list(ds)  # the default transform copies; the stream moves past each object
        oss_server.reset_stats()
        assert [o.read() for o in reversed(kept)] == [big[k] for k in reversed(list(big))]
        assert oss_server.stats()["requests"] >= 7, "the rest of large objects is read by range"


def test_a_kept_object_fetches_its_parts_at_once(
    oss_server: OssServer, bucket: str, big: dict[str, bytes], small_parts: dict[str, Any]
) -> None:
    """Read after the loop moved on, the rest of a 7 MiB object goes as 1 MiB ranges, up to
    prefetchConcurrency (4) at a time, each fetched once and written where it belongs."""
    data = big["big/f-seven"]
    uris = [f"oss://{bucket}/big/f-seven", f"oss://{bucket}/big/a-small"]
    # The loop moves past the object (and its parts) to the next one.
    kept, _small = OssIterableDataset.from_objects(uris, **small_parts)
    oss_server.control("POST", "delay", {"delay_ms": 50})  # so that requests overlap
    try:
        oss_server.reset_stats()
        assert kept.read(10) == data[:10]  # within the first part, kept from the stream
        assert kept.read() == data[10:]
        whole = oss_server.stats()
        kept.seek(MIB // 2)
        buf = bytearray(5 * MIB)
        assert kept.readinto(buf) == len(buf)
        assert buf == data[MIB // 2 : MIB // 2 + 5 * MIB]
    finally:
        oss_server.control("POST", "delay", {"delay_ms": 0})
    assert whole["requests_by_method"]["GET"] == 7, whole  # bytes 1 MiB.. in 1 MiB parts
    assert 3 <= whole["max_in_flight"] <= 4 + 1, whole
    assert oss_server.stats()["requests_by_method"]["GET"] == 7 + 5, "then 5 MiB from 0.5"


def test_a_kept_object_failing_for_good_names_itself(
    oss_server: OssServer, bucket: str, big: dict[str, bytes], tmp_path: Path
) -> None:
    opts = oss_server.dataset_options(
        tmp_path,
        {
            "datasetConfig": {"prefetchUnitMB": 1, "prefetchConcurrency": 3},
            "retryConfig": {"maxAttempts": 1},
        },
    )
    uris = [f"oss://{bucket}/big/f-seven", f"oss://{bucket}/big/a-small"]
    kept, _small = OssIterableDataset.from_objects(
        uris, **opts
    )  # the loop moved past the large object
    oss_server.set_faults(bucket=bucket, keys_prefix="big/f-seven", p_503=1.0)
    try:
        with pytest.raises(OssError) as info:
            kept.read()
    finally:
        oss_server.clear_faults()
    assert "big/f-seven" in str(info.value)
    assert "503" in str(info.value)
    kept.seek(0)
    assert kept.read() == big["big/f-seven"], "a failed read leaves the object readable"


def test_large_copy_pickles_and_reads_in_a_fresh_client(
    bucket: str, big: dict[str, bytes], small_parts: dict[str, Any]
) -> None:
    for ds in datasets(bucket, small_parts):
        obj = next(o for o in ds if o.key == "big/d-three-and-half")
        clone = pickle.loads(pickle.dumps(obj.copy()))
        assert isinstance(clone, DataObject)
        assert clone.read() == big["big/d-three-and-half"]


def test_parts_are_ranged_gets_of_the_unit_size(
    oss_server: OssServer, bucket: str, big: dict[str, bytes], small_parts: dict[str, Any]
) -> None:
    prefix_ds = datasets(bucket, small_parts)[0]
    oss_server.reset_stats()
    for obj in prefix_ds:
        obj.read()
    # 1 list + one GET per MiB (rounded up), one for the empty object.
    parts = sum(max(1, -(-n // MIB)) for n in SIZES.values())
    stats = oss_server.stats()
    assert stats["requests_by_method"]["GET"] == 1 + parts, stats
    # prefetchConcurrency 4, +1 for the listing, +1 for a handler still finishing on the server
    # side when the client has its bytes and starts the next request.
    assert stats["max_in_flight"] <= 4 + 2, stats


def test_a_kept_large_object_does_not_block_another_dataset(
    bucket: str, big: dict[str, bytes], small_parts: dict[str, Any]
) -> None:
    # Both datasets share one 8 MiB budget; the kept object's stream holds prefetched parts.
    first, second = datasets(bucket, small_parts)
    kept = next(o for o in first if o.key == "big/f-seven")
    assert kept.read(10) == big["big/f-seven"][:10]
    assert [(o.key, o.read()) for o in second] == list(big.items())
    assert kept.read() == big["big/f-seven"][10:]


def test_random_reads_match_a_local_file(
    bucket: str, big: dict[str, bytes], small_parts: dict[str, Any]
) -> None:
    """Reads, readinto (into buffers of other item sizes too) and seeks, mixed at random on
    objects arriving in parts, against io.BytesIO over the same bytes."""
    import array
    import io

    rng = random.Random(11)
    for ds in datasets(bucket, small_parts):
        for obj in ds:
            model = io.BytesIO(big[obj.key])
            for _ in range(40):
                op = rng.choice(["read", "readinto", "seek"])
                n = rng.choice([0, 1, 4096, MIB - 1, MIB + 1, 2 * MIB + 3])
                if op == "read":
                    assert obj.read(n) == model.read(n), obj.key
                elif op == "readinto":
                    words = array.array("i", bytes(n - n % 4))
                    expected = model.read(len(words) * 4)
                    assert obj.readinto(words) == len(expected), obj.key
                    assert words.tobytes()[: len(expected)] == expected, obj.key
                else:
                    target = rng.randrange(0, obj.size + 2)
                    assert obj.seek(target) == model.seek(target)
                assert obj.tell() == model.tell()


def test_readinto_a_read_only_buffer_is_refused(
    bucket: str, big: dict[str, bytes], small_parts: dict[str, Any]
) -> None:
    obj = next(iter(datasets(bucket, small_parts)[0]))
    with pytest.raises((BufferError, TypeError)):
        obj.readinto(bytes(10))
    assert obj.read() == big[obj.key], "a refused readinto consumes nothing"


def test_whole_reads_go_straight_into_the_result(
    oss_server: OssServer, bucket: str, big: dict[str, bytes], tmp_path: Path
) -> None:
    """The budget holds two 1 MiB parts, so parts fetched ahead are at most two or three at a
    time; reading the rest of a 7 MiB object whole sends all its parts at once, up to the
    concurrency, straight into the result — once each."""
    opts = oss_server.dataset_options(
        tmp_path,
        {"datasetConfig": {"prefetchUnitMB": 1, "prefetchMB": 2, "prefetchConcurrency": 6}},
    )
    ds = OssIterableDataset.from_objects(f"oss://{bucket}/big/f-seven", **opts)
    oss_server.control("POST", "delay", {"delay_ms": 50})  # so that requests overlap
    try:
        oss_server.reset_stats()
        for obj in ds:
            assert obj.read(10) == big["big/f-seven"][:10]
            buf = bytearray(obj.size - 10)
            assert obj.readinto(buf) == len(buf)
            assert buf == big["big/f-seven"][10:]
            assert obj.read() == b""
    finally:
        oss_server.control("POST", "delay", {"delay_ms": 0})
    stats = oss_server.stats()
    assert stats["requests_by_method"]["GET"] == 8, stats  # one per MiB, none twice
    assert 5 <= stats["max_in_flight"] <= 6 + 1, stats


@pytest.mark.parametrize("kept", [False, True], ids=["streamed", "kept"])
def test_whole_reads_resume_broken_parts(
    oss_server: OssServer,
    bucket: str,
    big: dict[str, bytes],
    small_parts: dict[str, Any],
    kept: bool,
) -> None:
    """As the stream delivers them, or by range once it has moved on (kept objects)."""
    oss_server.set_faults(
        seed=3, bucket=bucket, keys_prefix="big/", p_reset=0.2, p_truncate=0.2, p_503=0.1
    )
    try:
        for ds in datasets(bucket, small_parts):
            objects = list(ds) if kept else ds
            assert [(o.key, o.read()) for o in objects] == list(big.items())
        assert oss_server.faults()["state"]["faultable_requests"] > 40
    finally:
        oss_server.clear_faults()


def test_a_part_failing_for_good_fails_the_read_with_its_name(
    oss_server: OssServer, bucket: str, big: dict[str, bytes], tmp_path: Path
) -> None:
    opts = oss_server.dataset_options(
        tmp_path,
        {
            "datasetConfig": {"prefetchUnitMB": 1, "prefetchMB": 2, "prefetchConcurrency": 2},
            "retryConfig": {"maxAttempts": 1},
        },
    )
    uris = [f"oss://{bucket}/big/f-seven", f"oss://{bucket}/big/a-small"]
    ds = OssIterableDataset.from_objects(uris, **opts)
    # The first part passes; every later request for the object fails.
    oss_server.set_faults(
        bucket=bucket,
        keys_prefix="big/f-seven",
        burst={"status": 500, "count": 1000, "start_after": 1},
    )
    try:
        it = iter(ds)
        obj = next(it)
        with pytest.raises(OssError) as info:
            obj.read()
        assert "big/f-seven" in str(info.value)
        assert "500" in str(info.value)
        assert next(it).read() == big["big/a-small"], "the stream goes on with the next object"
    finally:
        oss_server.clear_faults()


@pytest.mark.parametrize("kept", [False, True], ids=["streamed", "kept"])
def test_ctrl_c_interrupts_a_whole_read(tmp_path: Path, kept: bool) -> None:
    # Its own server: the test stalls every request.
    srv = start_oss_server(tmp_path / "root")
    try:
        srv.sdk_client().put_bucket(
            __import__("alibabacloud_oss_v2").PutBucketRequest(bucket="interrupted-read")
        )
        srv.put("interrupted-read", "big", os.urandom(7 * MIB))
        srv.put("interrupted-read", "small", b"x")
        _interrupt_a_whole_read(srv, tmp_path, kept)
    finally:
        stop_oss_server(srv)


def _interrupt_a_whole_read(srv: OssServer, tmp_path: Path, kept: bool) -> None:
    config = tmp_path / "slow.json"
    config.write_text(json.dumps({"datasetConfig": {"prefetchUnitMB": 1, "prefetchMB": 2}}))
    cred = srv.write_cred_file(tmp_path / "cred.json")
    # Kept: the loop has moved on to the small object, so the big one is read by range.
    take = "obj, _ = ds" if kept else "obj = next(iter(ds))"
    script = f"""
import sys
from osstorchconnector import OssIterableDataset
ds = OssIterableDataset.from_objects(["oss://interrupted-read/big", "oss://interrupted-read/small"],
    endpoint="{srv.endpoint}", region="{srv.region}", cred_path="{cred}", config_path="{config}")
{take}
print("first part", flush=True)
sys.stdin.readline()
try:
    obj.read()
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(7)
"""
    with python_child(script, stdin=True) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        assert proc.stdout.readline().strip() == "first part"
        srv.control("POST", "delay", {"delay_ms": 60_000})
        proc.stdin.write("go\n")
        proc.stdin.flush()
        time.sleep(1.0)  # the read is waiting on stalled parts
        out, err = interrupt(proc, "the read", timeout=15)
    assert proc.returncode == 7, err
    assert out.strip() == "interrupted"


@pytest.mark.parametrize("whole", [False, True], ids=["part-by-part", "rest-at-once"])
def test_an_object_with_a_corrupt_part_fails_before_its_last_byte_is_handed_over(
    oss_server: OssServer,
    bucket: str,
    big: dict[str, bytes],
    small_parts: dict[str, Any],
    whole: bool,
) -> None:
    """Every answer states the whole object's CRC-64 (ranged ones too, as on OSS): the parts'
    CRCs, combined as they come, must match it by the last part."""
    key = "big/f-seven"
    oss_server.set_faults(seed=2, bucket=bucket, keys_prefix=key, p_corrupt=1.0)
    try:
        for ds in datasets(bucket, small_parts):
            got = b""
            with pytest.raises(OssError, match="CRC-64/XZ mismatch") as info:
                for obj in ds:
                    if obj.key != key:
                        obj.read()
                        continue
                    if whole:
                        got = obj.read()
                    else:
                        while piece := obj.read(300_000):
                            got += piece
            assert (info.value.bucket, info.value.key) == (bucket, key)
            assert len(got) < len(big[key]), "the last part was not handed over"
    finally:
        oss_server.clear_faults()
    # Without faults the same reads succeed: the check is not what failed them.
    for ds in datasets(bucket, small_parts):
        assert {o.key: o.read() for o in ds}[key] == big[key]
