"""`read_via`: one copy into a new bytes through a writable window, and no view outlives it."""

from __future__ import annotations

import pytest

from osstorchconnector._core import Window, read_via


def test_fills_the_result_through_the_window() -> None:
    def readinto(window: Window) -> int:
        with memoryview(window) as view:
            assert not view.readonly
            view[:] = bytes(range(10))
            return len(view)

    assert read_via(10, readinto) == bytes(range(10))


def test_a_short_count_cuts_the_result() -> None:
    def readinto(window: Window) -> int:
        with memoryview(window) as view:
            view[:3] = b"abc"
        return 3

    assert read_via(10, readinto) == b"abc"


def test_a_count_beyond_the_size_is_clamped() -> None:
    def readinto(window: Window) -> int:
        with memoryview(window) as view:
            view[:] = b"xy"
        return 99

    assert read_via(2, readinto) == b"xy"


def test_errors_from_readinto_propagate() -> None:
    def readinto(window: Window) -> int:
        raise OSError("disk on fire")

    with pytest.raises(OSError, match="disk on fire"):
        read_via(10, readinto)


def test_zero_bytes() -> None:
    assert read_via(0, lambda window: 0) == b""


def test_a_view_kept_past_the_call_is_refused() -> None:
    kept: list[memoryview] = []

    def readinto(window: Window) -> int:
        view = memoryview(window)
        view[:] = b"12345"
        kept.append(view[1:])  # a slice keeps the export alive
        view.release()
        return 5

    with pytest.raises(BufferError, match="kept a view"):
        read_via(5, readinto)
    assert bytes(kept[0]) == b"2345"  # still valid memory: it was never freed


def test_a_kept_window_gives_no_new_views() -> None:
    kept: list[Window] = []

    def readinto(window: Window) -> int:
        kept.append(window)
        with memoryview(window) as view:
            view[:] = b"ok"
        return 2

    assert read_via(2, readinto) == b"ok"
    with pytest.raises(BufferError, match="closed"):
        memoryview(kept[0])
