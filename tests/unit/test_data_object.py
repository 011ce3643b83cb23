"""DataObject behaves like a readable, seekable binary file and survives copy and pickle."""

from __future__ import annotations

import io
import pickle

import pytest

from osstorchconnector import DataObject

BODY = bytes(range(256)) * 40


def make(body: bytes = BODY) -> DataObject:
    return DataObject("dir/obj.bin", len(body), "cat", body, "bkt")


def test_attributes() -> None:
    obj = make()
    assert (obj.key, obj.size, obj.label, obj.bucket) == ("dir/obj.bin", len(BODY), "cat", "bkt")
    assert "dir/obj.bin" in repr(obj)


def test_read_in_pieces_then_eof() -> None:
    obj = make()
    pieces = []
    while chunk := obj.read(1000):
        pieces.append(chunk)
    assert b"".join(pieces) == BODY
    assert [len(p) for p in pieces[:-1]] == [1000] * (len(pieces) - 1)
    assert obj.read() == b""
    assert obj.tell() == len(BODY)


def test_read_all_and_none() -> None:
    assert make().read() == BODY
    assert make().read(None) == BODY
    assert make().read(0) == b""


def test_readinto_reused_buffer() -> None:
    obj = make()
    buf = bytearray(777)
    out = bytearray()
    while n := obj.readinto(buf):
        out += buf[:n]
    assert bytes(out) == BODY


def test_readinto_memoryview_of_other_itemsize() -> None:
    import array

    target = array.array("i", [0] * 4)  # 16 bytes
    obj = make()
    assert obj.readinto(target) == 16
    assert target.tobytes() == BODY[:16]


def test_seek_and_tell() -> None:
    obj = make()
    assert obj.seekable() and obj.readable() and not obj.writable()
    assert obj.seek(10) == 10
    assert obj.read(5) == BODY[10:15]
    assert obj.seek(-5, io.SEEK_CUR) == 10
    assert obj.seek(-3, io.SEEK_END) == len(BODY) - 3
    assert obj.read() == BODY[-3:]
    assert obj.seek(len(BODY) + 10) == len(BODY) + 10
    assert obj.read() == b""
    with pytest.raises(ValueError, match="negative seek"):
        obj.seek(-1)
    with pytest.raises(ValueError, match="whence"):
        obj.seek(0, 7)


def test_readline_and_iteration_come_from_io() -> None:
    obj = DataObject("t.txt", 8, "", b"a\nbc\ndef", "b")
    assert obj.readline() == b"a\n"
    assert list(obj) == [b"bc\n", b"def"]


def test_copy_is_independent() -> None:
    obj = make()
    obj.read(100)
    dup = obj.copy()
    assert dup.tell() == 0
    assert dup.read() == BODY
    assert obj.read(5) == BODY[100:105]
    obj.close()
    assert dup.seek(0) == 0 and dup.read(3) == BODY[:3]


def test_pickle_round_trip() -> None:
    obj = make()
    obj.read(10)
    back = pickle.loads(pickle.dumps(obj))
    assert (back.key, back.size, back.label, back.bucket) == (obj.key, obj.size, "cat", "bkt")
    assert back.read() == BODY


def test_closed_object_refuses_reads_and_context_manager_closes() -> None:
    with make() as obj:
        assert obj.read(1) == BODY[:1]
    assert obj.closed
    with pytest.raises(ValueError, match=r"closed DataObject oss://bkt/dir/obj.bin"):
        obj.read()
