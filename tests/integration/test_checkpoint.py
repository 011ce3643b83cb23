"""OssCheckpoint: torch.save straight to OSS and torch.load by range — read back with the
official SDK, replaced atomically, aborted (old object kept, no pending upload) on failure."""

from __future__ import annotations

import gc
import hashlib
import io
import json
import os
import random
import threading
from pathlib import Path
from typing import Any

import pytest

from conftest import OssServer, interrupt, python_child
from osstorchconnector import OssCheckpoint, OssError, OssObjectChangedError

torch = pytest.importorskip("torch")

MIB = 1024 * 1024


def config(tmp_path: Path, **checkpoint: Any) -> str:
    path = tmp_path / "config.json"
    body = {"checkpointConfig": checkpoint, "retryConfig": {"maxAttempts": 4}}
    path.write_text(json.dumps(body))
    return str(path)


def checkpoint(server: OssServer, tmp_path: Path, **settings: Any) -> OssCheckpoint:
    return OssCheckpoint(
        server.endpoint,
        cred_path=str(server.write_cred_file(tmp_path / "cred.json")),
        config_path=config(tmp_path, **settings),
        region=server.region,
    )


def state_dict(mib: int, seed: int = 0) -> dict[str, Any]:
    """Tensors of about ``mib`` MiB in all, of several dtypes and shapes."""
    g = torch.Generator().manual_seed(seed)
    tensors: dict[str, Any] = {"step": torch.tensor(seed)}
    per = max(1, mib // 4)
    for i in range(4):
        n = per * MIB // 4
        tensors[f"layer{i}.weight"] = torch.randn(n, generator=g, dtype=torch.float32)
    tensors["layer0.bias"] = torch.arange(1000, dtype=torch.int64)
    return tensors


def saved_locally(sd: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(sd, buffer)
    return buffer.getvalue()


def test_a_small_checkpoint_round_trips_as_one_put(
    oss_server: OssServer, bucket: str, tmp_path: Path
) -> None:
    cp = checkpoint(oss_server, tmp_path)
    sd = state_dict(1)
    before = oss_server.stats()["requests_by_method"]
    with cp.writer(f"oss://{bucket}/ckpt/small.pt") as w:
        torch.save(sd, w)
    after = oss_server.stats()["requests_by_method"]
    assert after.get("POST", 0) == before.get("POST", 0), "no multipart upload for one part"
    assert oss_server.get(bucket, "ckpt/small.pt") == saved_locally(sd)
    with cp.reader(f"oss://{bucket}/ckpt/small.pt") as r:
        loaded = torch.load(r, weights_only=True)
    assert loaded.keys() == sd.keys()
    assert all(torch.equal(loaded[k], sd[k]) for k in sd)


def test_a_large_checkpoint_round_trips_in_parts(
    oss_server: OssServer, bucket: str, tmp_path: Path
) -> None:
    cp = checkpoint(oss_server, tmp_path, uploadIoSizeMB=1, uploadBufferSizeMB=8)
    sd = state_dict(24, seed=1)
    uri = f"oss://{bucket}/ckpt/large.pt"
    with cp.writer(uri) as w:
        torch.save(sd, w)
        assert w.tell() == len(saved_locally(sd))
    assert oss_server.get(bucket, "ckpt/large.pt") == saved_locally(sd)
    assert oss_server.pending_uploads(bucket) == []
    loaded = torch.load(cp.reader(uri), weights_only=True)
    assert all(torch.equal(loaded[k], sd[k]) for k in sd)


@pytest.mark.parametrize("size", [0, 1, MIB - 1, MIB, MIB + 1, 3 * MIB + 5])
def test_any_size_round_trips_exactly(
    oss_server: OssServer, bucket: str, tmp_path: Path, size: int
) -> None:
    cp = checkpoint(oss_server, tmp_path, uploadIoSizeMB=1, uploadBufferSizeMB=3)
    data = os.urandom(size)
    uri = f"oss://{bucket}/sizes/{size}"
    with cp.writer(uri) as w:
        rng = random.Random(size)
        at = 0
        while at < size:  # writes of assorted sizes, as file code makes them
            n = rng.choice([1, 100, 65_536, MIB + 3])
            assert w.write(memoryview(data)[at : at + n]) == len(data[at : at + n])
            at += n
    assert oss_server.get(bucket, f"sizes/{size}") == data
    assert cp.reader(uri).read() == data


def old_object(server: OssServer, bucket: str, key: str) -> bytes:
    data = b"the previous checkpoint " * 1000
    server.put(bucket, key, data)
    return data


def test_an_exception_in_the_with_block_keeps_the_old_object(
    oss_server: OssServer, bucket: str, tmp_path: Path
) -> None:
    old = old_object(oss_server, bucket, "abort/exc.pt")
    cp = checkpoint(oss_server, tmp_path, uploadIoSizeMB=1, uploadBufferSizeMB=4)
    w = cp.writer(f"oss://{bucket}/abort/exc.pt")
    with pytest.raises(RuntimeError, match="training crashed"), w:
        w.write(os.urandom(5 * MIB))  # parts already uploaded
        raise RuntimeError("training crashed")
    assert oss_server.get(bucket, "abort/exc.pt") == old
    assert oss_server.pending_uploads(bucket) == []
    with pytest.raises(ValueError, match="closed"):
        w.write(b"more")


def test_a_part_failing_after_its_retries_raises_and_keeps_the_old_object(
    oss_server: OssServer, bucket: str, tmp_path: Path
) -> None:
    old = old_object(oss_server, bucket, "abort/part.pt")
    cp = checkpoint(oss_server, tmp_path, uploadIoSizeMB=1, uploadBufferSizeMB=4)
    w = cp.writer(f"oss://{bucket}/abort/part.pt")
    w.write(os.urandom(2 * MIB))  # starts the multipart upload
    oss_server.set_faults(bucket=bucket, keys_prefix="abort/part.pt", p_503=1.0, methods=["PUT"])
    try:
        with pytest.raises(OssError) as raised, w:
            w.write(os.urandom(4 * MIB))
    finally:
        oss_server.clear_faults()
    assert raised.value.key == "abort/part.pt"
    assert raised.value.status == 503
    assert f"oss://{bucket}/abort/part.pt" in str(raised.value)
    assert oss_server.get(bucket, "abort/part.pt") == old
    assert oss_server.pending_uploads(bucket) == []


def test_a_writer_dropped_unclosed_is_aborted(
    oss_server: OssServer, bucket: str, tmp_path: Path
) -> None:
    old = old_object(oss_server, bucket, "abort/dropped.pt")
    cp = checkpoint(oss_server, tmp_path, uploadIoSizeMB=1, uploadBufferSizeMB=4)
    w = cp.writer(f"oss://{bucket}/abort/dropped.pt")
    w.write(os.urandom(3 * MIB))
    del w
    gc.collect()
    assert oss_server.get(bucket, "abort/dropped.pt") == old
    assert oss_server.pending_uploads(bucket) == []


def test_ctrl_c_during_a_save_aborts_it(oss_server: OssServer, bucket: str, tmp_path: Path) -> None:
    old = old_object(oss_server, bucket, "abort/sigint.pt")
    cred = oss_server.write_cred_file(tmp_path / "cred.json")
    cfg = config(tmp_path, uploadIoSizeMB=1, uploadBufferSizeMB=2)
    oss_server.control("POST", "delay", {"delay_ms": 300})  # parts take a while
    script = f"""
import os, sys
from osstorchconnector import OssCheckpoint
cp = OssCheckpoint({oss_server.endpoint!r}, cred_path={str(cred)!r}, config_path={cfg!r},
                   region={oss_server.region!r})
try:
    with cp.writer("oss://{bucket}/abort/sigint.pt") as w:
        print("writing", flush=True)
        while True:
            w.write(os.urandom(1 << 20))
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""
    try:
        proc = python_child(script)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "writing"
        out, err = interrupt(proc, "a save waiting for its parts")
    finally:
        oss_server.control("POST", "delay", {"delay_ms": 0})
    assert "interrupted" in out, err
    assert oss_server.get(bucket, "abort/sigint.pt") == old
    assert oss_server.pending_uploads(bucket) == []


def test_the_reader_seeks_anywhere_and_reads_only_what_is_asked(
    oss_server: OssServer, bucket: str, tmp_path: Path
) -> None:
    size = 64 * MIB + 17
    meta = oss_server.generate(bucket, "read/big.bin", size, seed=3)
    cp = checkpoint(oss_server, tmp_path)
    r = cp.reader(f"oss://{bucket}/read/big.bin")
    assert (r.size, r.seekable(), r.readable()) == (size, True, True)
    h = hashlib.sha256()
    rng = random.Random(4)
    sent_before = oss_server.stats()["bytes_sent"]
    spots = []
    for _ in range(6):
        whence = rng.choice([0, 1, 2])
        if whence == 0:
            pos = r.seek(rng.randrange(size), 0)
        elif whence == 1:
            pos = r.seek(rng.randrange(-r.tell(), size - r.tell()), 1)
        else:
            pos = r.seek(-rng.randrange(1, size), 2)
        piece = r.read(4096)
        spots.append((pos, piece))
        h.update(piece)
    served = oss_server.stats()["bytes_sent"] - sent_before
    assert served < 8 * MIB, f"{served} bytes served for six 4 KiB reads of {size}"
    full = oss_server.get(bucket, "read/big.bin")
    assert hashlib.sha256(full).hexdigest() == meta.get("sha256", hashlib.sha256(full).hexdigest())
    for pos, piece in spots:
        assert piece == full[pos : pos + 4096], pos


def test_a_reader_of_a_replaced_object_raises(
    oss_server: OssServer, bucket: str, tmp_path: Path
) -> None:
    oss_server.put(bucket, "read/v.bin", os.urandom(3 * MIB))
    cp = checkpoint(oss_server, tmp_path)
    r = cp.reader(f"oss://{bucket}/read/v.bin")
    r.read(10)
    oss_server.put(bucket, "read/v.bin", os.urandom(3 * MIB))
    with pytest.raises(OssObjectChangedError):
        r.seek(2 * MIB)
        r.read(10)


def test_writers_in_threads(oss_server: OssServer, bucket: str, tmp_path: Path) -> None:
    cp = checkpoint(oss_server, tmp_path, uploadIoSizeMB=1, uploadBufferSizeMB=3)
    payloads = {f"threads/{i}": os.urandom(2 * MIB + i) for i in range(6)}
    errors: list[BaseException] = []

    def save(key: str) -> None:
        try:
            with cp.writer(f"oss://{bucket}/{key}") as w:
                w.write(payloads[key])
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=save, args=(k,)) for k in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for key, data in payloads.items():
        assert oss_server.get(bucket, key) == data


def test_a_whole_read_of_a_corrupt_object_fails_naming_it(
    oss_server: OssServer, bucket: str, tmp_path: Path
) -> None:
    """A reader's read() of everything fetches ranged parts at once; they must combine to the
    CRC-64 the server states for the object."""
    data = os.urandom(5 * MIB + 3)
    oss_server.put(bucket, "read/corrupt.bin", data)
    cp = checkpoint(oss_server, tmp_path)  # 1 MiB ranges
    oss_server.set_faults(seed=3, bucket=bucket, keys_prefix="read/corrupt.bin", p_corrupt=1.0)
    try:
        with pytest.raises(OssError, match="CRC-64/XZ mismatch") as info:
            cp.reader(f"oss://{bucket}/read/corrupt.bin").read()
    finally:
        oss_server.clear_faults()
    assert (info.value.bucket, info.value.key) == (bucket, "read/corrupt.bin")
    assert cp.reader(f"oss://{bucket}/read/corrupt.bin").read() == data
