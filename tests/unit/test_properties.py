"""Property-based tests: the manifest parser and DataObject on arbitrary input never fail in
any way but the documented ones, and DataObject reads like an in-memory file."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from osstorchconnector import DataObject, OssConfigError, imagenet_manifest_parser


@given(st.binary(max_size=2000))
def test_manifest_parser_on_arbitrary_bytes(data: bytes) -> None:
    try:
        entries = list(imagenet_manifest_parser(io.BytesIO(data)))
    except OssConfigError as e:
        assert "not UTF-8" in str(e)
        return
    for key, label in entries:
        assert key and key == key.strip() and "\n" not in key and "\t" not in key
        assert label == label.strip() and "\t" not in label


@given(st.lists(st.tuples(st.text(min_size=1).map(str.strip), st.text().map(str.strip))))
def test_manifest_round_trip(rows: list[tuple[str, str]]) -> None:
    rows = [(k, v) for k, v in rows if k and "\t" not in k + v and not set("\r\n") & set(k + v)]
    text = "".join(f"{k}\t{v}\n" if v else f"{k}\n" for k, v in rows)
    got = list(imagenet_manifest_parser(io.BytesIO(text.encode())))
    assert got == rows


operations = st.lists(
    st.one_of(
        st.tuples(st.just("read"), st.integers(-2, 300)),
        st.tuples(st.just("readinto"), st.integers(0, 300)),
        st.tuples(st.just("seek"), st.integers(0, 400), st.integers(0, 2)),
    ),
    max_size=30,
)


@settings(max_examples=300)
@given(st.binary(max_size=1000), operations)
def test_data_object_behaves_like_bytesio(body: bytes, ops: list[tuple[int | str, ...]]) -> None:
    obj = DataObject("k", len(body), "", body, "b")
    ref = io.BytesIO(body)
    for op in ops:
        if op[0] == "read":
            assert obj.read(int(op[1])) == ref.read(int(op[1]))
        elif op[0] == "readinto":
            a, b = bytearray(int(op[1])), bytearray(int(op[1]))
            assert obj.readinto(a) == ref.readinto(b)
            assert a == b
        else:
            offset, whence = int(op[1]), int(op[2])
            if whence != 0:
                offset -= 200  # exercise negative relative seeks too
            base = {0: 0, 1: ref.tell(), 2: len(body)}[whence]
            if base + offset < 0:
                # BytesIO clamps to 0; like a real file, DataObject refuses.
                with pytest.raises(ValueError, match="negative seek"):
                    obj.seek(offset, whence)
                continue
            assert obj.seek(offset, whence) == ref.seek(offset, whence)
        assert obj.tell() == ref.tell()
