"""OssSafetensor against the OSS test server: files it saves load with Hugging Face's
`safetensors` (read back with the official SDK) and files Hugging Face saves (uploaded with the
official SDK) load with it; reads fetch only what is asked for; corrupt headers are clear
ValueErrors; a failed save leaves the old object."""

from __future__ import annotations

import io
import json
import re
import struct
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import OssServer
from osstorchconnector import OssError, OssNotFoundError, OssSafetensor
from osstorchconnector import _safetensors_format as safetensor_format

torch = pytest.importorskip("torch")
safetensors = pytest.importorskip("safetensors")
hf = pytest.importorskip("safetensors.torch")

MIB = 1024 * 1024
MULTIPART = {"uploadIoSizeMB": 1, "uploadBufferSizeMB": 4}


def store(server: OssServer, tmp_path: Path, **checkpoint: Any) -> OssSafetensor:
    config = tmp_path / "config.json"
    # Few retries: the failing-upload test would otherwise back off for a minute.
    config.write_text(
        json.dumps({"checkpointConfig": checkpoint, "retryConfig": {"maxAttempts": 4}})
    )
    return OssSafetensor(
        server.endpoint,
        cred_path=str(server.write_cred_file(tmp_path / "cred.json")),
        config_path=str(config),
        region=server.region,
    )


def settled(server: OssServer) -> dict[str, Any]:
    """Server stats once every request has been counted: the server counts one after its
    response is sent, so a client may already be past it."""
    deadline = time.monotonic() + 10
    while (stats := server.stats())["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stats["in_flight"] == 0, stats
    return stats


def sent(server: OssServer) -> int:
    """Bytes the server has sent so far."""
    count: int = settled(server)["bytes_sent"]
    return count


def hf_metadata(data: bytes, tmp_path: Path) -> dict[str, str] | None:
    """The metadata as Hugging Face's reader sees it (it reads metadata from files only)."""
    path = tmp_path / "check.safetensors"
    path.write_bytes(data)
    with safetensors.safe_open(str(path), framework="pt") as f:
        meta: dict[str, str] | None = f.metadata()
    return meta


def header_of(data: bytes) -> tuple[int, dict[str, Any]]:
    (length,) = struct.unpack("<Q", data[:8])
    header: dict[str, Any] = json.loads(data[8 : 8 + length])
    return length, header


def mixed_tensors() -> dict[str, Any]:
    """Every dtype the brief names, scalars, empty and non-contiguous tensors, unicode names."""
    g = torch.Generator().manual_seed(7)
    base = torch.randn(6, 10, generator=g)
    return {
        "f32": torch.randn(3, 5, generator=g),
        "f16": torch.randn(7, generator=g).half(),
        "bf16": torch.randn(4, 3, generator=g).to(torch.bfloat16),
        "i64": torch.randint(-(2**62), 2**62, (9,), generator=g, dtype=torch.int64),
        "i8": torch.randint(-128, 127, (2, 2, 3), generator=g, dtype=torch.int8),
        "bool": torch.rand(11, generator=g) > 0.5,
        "u8": torch.randint(0, 255, (13,), generator=g, dtype=torch.uint8),
        "scalar.f32": torch.tensor(3.25),
        "scalar.i64": torch.tensor(-5, dtype=torch.int64),
        "scalar.bool": torch.tensor(True),
        "empty.f32": torch.zeros(0),
        "empty.2d.bf16": torch.zeros(3, 0, dtype=torch.bfloat16),
        "transposed": base.t(),  # non-contiguous
        "strided": base[::2, 1::3],  # non-contiguous, offset into its storage
        "offset.view": base[2:4],  # contiguous, but not at its storage's start
        "层.权重": torch.randn(2, 2, generator=g),
        "émoji 🚀": torch.arange(4, dtype=torch.int16),
    }


def assert_same(loaded: dict[str, Any], expected: dict[str, Any]) -> None:
    assert set(loaded) == set(expected)
    for name, tensor in expected.items():
        got = loaded[name]
        assert got.dtype == tensor.dtype, name
        assert got.shape == tensor.shape, name
        assert torch.equal(got, tensor), name


def test_files_we_save_load_with_hugging_face(
    oss_server: OssServer, bucket: str, tmp_path: Path
) -> None:
    st = store(oss_server, tmp_path)
    tensors = mixed_tensors()
    metadata = {"format": "pt", "note": "ünïcode ✓"}
    st.save_file(tensors, f"oss://{bucket}/w/mixed.safetensors", metadata=metadata)
    data = oss_server.get(bucket, "w/mixed.safetensors")
    assert_same(hf.load(data), tensors)
    assert hf_metadata(data, tmp_path) == metadata
    # Hugging Face's conventions: the header padded with spaces to 8 bytes, every tensor
    # aligned to its element size, the data area exactly filled.
    length, header = header_of(data)
    assert length % 8 == 0
    assert data[8 : 8 + length].rstrip(b" ") == data[8 : 8 + length].rstrip()
    assert list(header)[1:] == list(tensors), "the header keeps the caller's order"
    ends = []
    for name, tensor in tensors.items():
        begin, end = header[name]["data_offsets"]
        assert begin % tensor.element_size() == 0, name
        ends.append(end)
    assert max(ends) == len(data) - 8 - length


def test_files_hugging_face_saves_load_with_ours(
    oss_server: OssServer, bucket: str, tmp_path: Path
) -> None:
    tensors = {k: v.contiguous() for k, v in mixed_tensors().items()}
    metadata = {"format": "pt", "epoch": "3"}
    data = hf.save(tensors, metadata=metadata)
    oss_server.put(bucket, "hf/model.safetensors", data)
    uri = f"oss://{bucket}/hf/model.safetensors"
    st = store(oss_server, tmp_path)
    loaded = st.load_file(uri)
    assert_same(loaded, tensors)
    _, header = header_of(data)
    names = [k for k in header if k != "__metadata__"]
    assert list(loaded) == names, "load_file returns tensors in header order"
    with st.safe_open(uri) as f:
        assert f.keys() == names
        assert f.metadata() == metadata
        by_offset = sorted(names, key=lambda n: header[n]["data_offsets"][0])
        assert f.offset_keys() == by_offset
        for name, tensor in tensors.items():
            got = f.get_tensor(name)
            assert got.dtype == tensor.dtype and torch.equal(got, tensor), name


def test_load_file_is_one_head_then_reads_in_file_order(
    oss_server: OssServer, bucket: str, tmp_path: Path
) -> None:
    g = torch.Generator().manual_seed(1)
    tensors = {f"t{i:02}": torch.randn(1000 * (i + 1), generator=g) for i in range(40)}
    tensors["big"] = torch.randn(6 * MIB // 4, generator=g)  # several ranges, fetched at once
    data = hf.save(tensors)
    oss_server.put(bucket, "order.safetensors", data)
    st = store(oss_server, tmp_path)
    before = settled(oss_server)
    loaded = st.load_file(f"oss://{bucket}/order.safetensors")
    after = settled(oss_server)
    assert_same(loaded, tensors)
    methods = {
        m: after["requests_by_method"].get(m, 0) - before["requests_by_method"].get(m, 0)
        for m in ("HEAD", "GET")
    }
    assert methods["HEAD"] == 1
    # 1 MiB ranges (prefetchIoSizeMB): about one GET per MiB of file, none read twice.
    assert methods["GET"] <= len(data) // MIB + 4, methods
    served = after["bytes_sent"] - before["bytes_sent"]
    assert len(data) <= served < len(data) + MIB, served


def test_get_tensor_fetches_only_that_tensor(
    oss_server: OssServer, bucket: str, tmp_path: Path
) -> None:
    g = torch.Generator().manual_seed(2)
    tensors = {f"layer{i}": torch.randn(MIB // 4, generator=g) for i in range(40)}  # 40 MiB
    tensors["layer20.bias"] = torch.randn(1000, generator=g)
    data = hf.save(tensors)
    assert len(data) > 40 * MIB
    oss_server.put(bucket, "big.safetensors", data)
    st = store(oss_server, tmp_path)
    start = sent(oss_server)
    with st.safe_open(f"oss://{bucket}/big.safetensors") as f:
        opened = sent(oss_server)
        bias = f.get_tensor("layer20.bias")
        one = sent(oss_server)
        weight = f.get_tensor("layer33")
        two = sent(oss_server)
    assert torch.equal(bias, tensors["layer20.bias"])
    assert torch.equal(weight, tensors["layer33"])
    assert opened - start <= 2 * MIB, "opening reads the header (one range), not the file"
    assert one - opened < 4000 + 16 * 1024, one - opened
    assert two - one < MIB + 64 * 1024, two - one
    assert two - start < len(data) // 8


def test_get_slice_fetches_only_the_rows_asked_for(
    oss_server: OssServer, bucket: str, tmp_path: Path
) -> None:
    g = torch.Generator().manual_seed(3)
    full = torch.randn(1024, 256, generator=g)  # 1 KiB rows, 1 MiB in all
    tensors = {"emb": full, "scalar": torch.tensor(2.5), "vec": torch.arange(10)}
    oss_server.put(bucket, "slice.safetensors", hf.save(tensors))
    st = store(oss_server, tmp_path)
    with st.safe_open(f"oss://{bucket}/slice.safetensors") as f:
        emb = f.get_slice("emb")
        assert emb.get_shape() == [1024, 256]
        assert emb.get_dtype() == "F32"
        before = sent(oss_server)
        rows = emb[100:132]
        served = sent(oss_server) - before
        assert torch.equal(rows, full[100:132])
        assert 32 * 1024 <= served < 48 * 1024, served
        cases = [
            slice(None),
            slice(0, 0),
            slice(1000, 2000),
            slice(-5, None),
            slice(3, 40, 7),
            (slice(10, 20), slice(5, 9)),
            (slice(10, 20), 3),
            7,
            -1,
            (5, slice(None, 4)),
            Ellipsis,
            (Ellipsis, 2),
        ]
        for index in cases:
            got = emb[index]
            assert torch.equal(got, full[index]), index
        assert torch.equal(f.get_slice("vec")[2:5], torch.arange(10)[2:5])
        assert torch.equal(f.get_slice("scalar")[...], torch.tensor(2.5))
        with pytest.raises(IndexError):
            emb[1024]


def test_unknown_tensor_names_are_key_errors(
    oss_server: OssServer, bucket: str, tmp_path: Path
) -> None:
    oss_server.put(bucket, "k.safetensors", hf.save({"a": torch.zeros(2)}))
    uri = f"oss://{bucket}/k.safetensors"
    with store(oss_server, tmp_path).safe_open(uri) as f:
        with pytest.raises(KeyError, match=re.escape(uri)) as raised:
            f.get_tensor("missing.weight")
        assert "missing.weight" in str(raised.value)
        with pytest.raises(KeyError, match="nope"):
            f.get_slice("nope")
        view = f.get_slice("a")
    with pytest.raises(ValueError, match="closed"):
        f.get_tensor("a")
    with pytest.raises(ValueError, match="closed"):
        view[0:1]


def test_meta_device_reads_no_data(oss_server: OssServer, bucket: str, tmp_path: Path) -> None:
    tensors = {"w": torch.randn(512, 1024), "b": torch.zeros(3, dtype=torch.bfloat16)}
    data = hf.save(tensors)
    oss_server.put(bucket, "meta.safetensors", data)
    st = store(oss_server, tmp_path, prefetchIoSizeMB=1)
    uri = f"oss://{bucket}/meta.safetensors"
    before = sent(oss_server)
    loaded = st.load_file(uri, device="meta")
    with st.safe_open(uri, device=torch.device("meta")) as f:
        w = f.get_tensor("w")
        rows = f.get_slice("w")[3:9]
    served = sent(oss_server) - before
    assert served < len(data) // 2, "only the headers were read"
    for name, tensor in tensors.items():
        assert loaded[name].is_meta
        assert (loaded[name].shape, loaded[name].dtype) == (tensor.shape, tensor.dtype)
    assert w.is_meta and w.shape == (512, 1024)
    assert rows.is_meta and rows.shape == (6, 1024)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors_save_and_load(oss_server: OssServer, bucket: str, tmp_path: Path) -> None:
    tensors = {"w": torch.randn(64, 64, device="cuda"), "t": torch.randn(8, 4, device="cuda").t()}
    st = store(oss_server, tmp_path)
    uri = f"oss://{bucket}/cuda.safetensors"
    st.save_file(tensors, uri)
    loaded = st.load_file(uri, device="cuda")
    assert all(loaded[k].is_cuda and torch.equal(loaded[k], tensors[k]) for k in tensors)
    with st.safe_open(uri, device="cuda:0") as f:
        assert torch.equal(f.get_tensor("t"), tensors["t"])


def corrupt_files() -> dict[str, bytes]:
    def file(header: Any, data: bytes = b"", *, length: int | None = None) -> bytes:
        text = header if isinstance(header, bytes) else json.dumps(header).encode()
        return struct.pack("<Q", len(text) if length is None else length) + text + data

    f32 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    return {
        "shorter-than-8": b"\x01\x02",
        "length-beyond-file": file({"a": f32}, bytes(8), length=10_000),
        "length-huge": file({"a": f32}, bytes(8), length=2**63 + 5),
        "not-json": file(b"{not json", bytes(8)),
        "not-utf8": file(b'{"\xff": 1}', bytes(8)),
        "json-list": file([1, 2, 3], bytes(8)),
        "json-string": file("hello", bytes(8)),
        "entry-not-object": file({"a": [1, 2]}, bytes(8)),
        "unknown-dtype": file({"a": {**f32, "dtype": "F99"}}, bytes(8)),
        "bad-shape": file({"a": {**f32, "shape": [-2]}}, bytes(8)),
        "offsets-reversed": file({"a": {**f32, "data_offsets": [8, 0]}}, bytes(8)),
        "offsets-beyond-data": file({"a": {**f32, "data_offsets": [8, 16]}}, bytes(8)),
        "offsets-not-matching-shape": file({"a": {**f32, "data_offsets": [0, 4]}}, bytes(8)),
        "overlapping": file(
            {"a": f32, "b": {**f32, "data_offsets": [4, 12]}},
            bytes(12),
        ),
        "duplicate-names": file(
            b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
            b'"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}',
            bytes(8),
        ),
        "metadata-not-strings": file({"__metadata__": {"n": 1}, "a": f32}, bytes(8)),
        "huge-shape": file({"a": {**f32, "shape": [2**40, 2**40]}}, bytes(8)),
        "huge-empty-shape": file(
            {"a": {**f32, "shape": [0, 2**62, 2**62], "data_offsets": [0, 0]}}
        ),
        "many-huge-dims": file({"a": {**f32, "shape": [2**62] * 100_000}}, bytes(8)),
    }


@pytest.mark.parametrize("case", sorted(corrupt_files()))
def test_a_corrupt_header_is_a_value_error_naming_the_object(
    oss_server: OssServer, bucket: str, tmp_path: Path, case: str
) -> None:
    oss_server.put(bucket, f"bad/{case}", corrupt_files()[case])
    uri = f"oss://{bucket}/bad/{case}"
    st = store(oss_server, tmp_path)
    with pytest.raises(ValueError, match=re.escape(uri)):
        st.load_file(uri)
    with pytest.raises(ValueError, match=re.escape(uri)):
        st.safe_open(uri)


def test_a_missing_object_is_not_found(oss_server: OssServer, bucket: str, tmp_path: Path) -> None:
    st = store(oss_server, tmp_path)
    with pytest.raises(OssNotFoundError):
        st.load_file(f"oss://{bucket}/absent.safetensors")
    with pytest.raises(OssNotFoundError):
        st.safe_open(f"oss://{bucket}/absent.safetensors")


def old_object(server: OssServer, bucket: str, key: str) -> bytes:
    data: bytes = hf.save({"old": torch.arange(100)})
    server.put(bucket, key, data)
    return data


@pytest.mark.parametrize(
    ("tensors", "metadata", "error", "match"),
    [
        ({"a": torch.zeros(2)}, {"epoch": 3}, TypeError, "epoch"),
        ({"a": torch.zeros(2)}, {1: "x"}, TypeError, "str"),
        ({"a": torch.zeros(2, dtype=torch.complex128)}, None, ValueError, "'a'.*complex128"),
        ({"ok": torch.zeros(1), "sp": torch.eye(3).to_sparse()}, None, ValueError, "'sp'"),
        ({"m": torch.zeros(2, device="meta")}, None, ValueError, "'m'"),
        ({"n": [1, 2]}, None, TypeError, "'n'"),
        ({"__metadata__": torch.zeros(1)}, None, ValueError, "reserved"),
    ],
)
def test_bad_input_raises_before_anything_is_written(
    oss_server: OssServer,
    bucket: str,
    tmp_path: Path,
    tensors: dict[str, Any],
    metadata: Any,
    error: type[Exception],
    match: str,
) -> None:
    old = old_object(oss_server, bucket, "keep.safetensors")
    st = store(oss_server, tmp_path)
    before = settled(oss_server)["requests_by_method"]
    with pytest.raises(error, match=match):
        st.save_file(tensors, f"oss://{bucket}/keep.safetensors", metadata=metadata)
    with pytest.raises(error, match=match):
        st.do_save_safetensor(tensors, io.BytesIO(), metadata)
    after = settled(oss_server)["requests_by_method"]
    for method in ("PUT", "POST", "DELETE"):
        assert after.get(method, 0) == before.get(method, 0), method
    assert oss_server.get(bucket, "keep.safetensors") == old


def test_an_exception_mid_save_keeps_the_old_object(
    oss_server: OssServer, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = old_object(oss_server, bucket, "mid.safetensors")
    st = store(oss_server, tmp_path, **MULTIPART)
    tensors = {f"w{i}": torch.randn(MIB // 2) for i in range(6)}  # 2 MiB each
    real = safetensor_format._write_all
    calls = 0

    def failing(obj: Any, data: memoryview) -> None:
        nonlocal calls
        calls += 1
        if calls == 5:  # header and three tensors (6 MiB, parts sent) written
            raise KeyboardInterrupt
        real(obj, data)

    monkeypatch.setattr(safetensor_format, "_write_all", failing)
    with pytest.raises(KeyboardInterrupt):
        st.save_file(tensors, f"oss://{bucket}/mid.safetensors")
    assert calls == 5
    assert oss_server.get(bucket, "mid.safetensors") == old
    assert oss_server.pending_uploads(bucket) == []


def test_a_failing_upload_raises_and_keeps_the_old_object(
    oss_server: OssServer, bucket: str, tmp_path: Path
) -> None:
    old = old_object(oss_server, bucket, "fail.safetensors")
    st = store(oss_server, tmp_path, **MULTIPART)
    tensors = {f"w{i}": torch.randn(MIB // 2) for i in range(4)}
    oss_server.set_faults(bucket=bucket, keys_prefix="fail.safetensors", p_503=1.0, methods=["PUT"])
    try:
        with pytest.raises(OssError):
            st.save_file(tensors, f"oss://{bucket}/fail.safetensors")
    finally:
        oss_server.clear_faults()
    assert oss_server.get(bucket, "fail.safetensors") == old
    assert oss_server.pending_uploads(bucket) == []


def test_a_file_of_many_parts_round_trips(
    oss_server: OssServer, bucket: str, tmp_path: Path
) -> None:
    st = store(oss_server, tmp_path, **MULTIPART)
    g = torch.Generator().manual_seed(5)
    tensors: dict[str, Any] = {
        "embed": torch.randn(4096, 1024, generator=g),  # 16 MiB
        "proj": torch.randn(1024, 2048, generator=g).to(torch.bfloat16).t(),  # 4 MiB, strided
        "ids": torch.randint(0, 2**40, (300_000,), generator=g),
        "mask": torch.rand(5 * MIB + 3, generator=g) > 0.3,
    }
    uri = f"oss://{bucket}/parts/model.safetensors"
    before = settled(oss_server)["requests_by_method"]
    st.save_file(tensors, uri, metadata={"parts": "many"})
    after = settled(oss_server)["requests_by_method"]
    assert after.get("POST", 0) - before.get("POST", 0) >= 2, "initiate and complete"
    assert after.get("PUT", 0) - before.get("PUT", 0) > 20, "one PUT per 1 MiB part"
    data = oss_server.get(bucket, "parts/model.safetensors")
    assert_same(hf.load(data), tensors)
    assert hf_metadata(data, tmp_path) == {"parts": "many"}
    local = io.BytesIO()
    st.do_save_safetensor(tensors, local, {"parts": "many"})
    assert local.getvalue() == data, "the same bytes into any file"
    assert_same(st.load_file(uri), tensors)
    with st.safe_open(uri) as f:
        assert torch.equal(f.get_slice("embed")[4000:4096], tensors["embed"][4000:4096])


def test_empty_files_and_the_constructor(
    oss_server: OssServer, bucket: str, tmp_path: Path
) -> None:
    st = store(oss_server, tmp_path)
    uri = f"oss://{bucket}/empty.safetensors"
    st.save_file({}, uri)
    data = oss_server.get(bucket, "empty.safetensors")
    assert hf.load(data) == {}
    assert st.load_file(uri) == {}
    with st.safe_open(uri) as f:
        assert (f.keys(), f.offset_keys(), f.metadata()) == ([], [], {})
    with pytest.raises(ValueError, match="endpoint"):
        OssSafetensor("")
    assert not oss_server.exists(bucket, "never-written.safetensors")
