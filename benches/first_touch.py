"""How fast this machine fills memory it has not touched yet: 4 KiB pages against huge pages,
one thread against two, fresh after an idle pause against just freed.

    python benches/first_touch.py [--mib 256] [--pause 3] [--rounds 3]

Each case maps `--mib` MiB anonymously (2 MiB-aligned), optionally asks for transparent huge
pages (`MADV_HUGEPAGE`), fills it with `memset` on one or two threads and prints GB/s. "fresh"
cases first sleep `--pause` seconds, long enough for a VM that reports free memory to its host to
have done so; "again" maps and fills once more right after unmapping. Linux only, standard
library only (ctypes releases the GIL during `memset`, so two threads fill in parallel).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import threading
import time

PROT_RW = 0x1 | 0x2
MAP_PRIVATE_ANON = 0x02 | 0x20
MADV_HUGEPAGE = 14
HUGE = 2 << 20

libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]


def fill_rate(size: int, huge: bool, threads: int) -> float:
    """GB/s of one map-advise-fill of `size` bytes, unmapped afterwards."""
    raw = libc.mmap(None, size + HUGE, PROT_RW, MAP_PRIVATE_ANON, -1, 0)
    if raw in (None, ctypes.c_void_p(-1).value):
        raise OSError(ctypes.get_errno(), "mmap failed")
    try:
        start = (raw + HUGE - 1) // HUGE * HUGE
        if huge and libc.madvise(start, size, MADV_HUGEPAGE) != 0:
            raise OSError(ctypes.get_errno(), "madvise(MADV_HUGEPAGE) failed")
        step = size // threads
        workers = [
            threading.Thread(target=libc.memset, args=(start + i * step, 1, step))
            for i in range(threads)
        ]
        began = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return size / (time.perf_counter() - began) / 1e9
    finally:
        libc.munmap(raw, size + HUGE)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--mib", type=int, default=256)
    p.add_argument("--pause", type=float, default=3.0, help="idle seconds before a fresh case")
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    size = a.mib << 20
    print(f"fill {a.mib} MiB, GB/s; fresh = after {a.pause:g} s idle, again = right after")
    for pages in ("4 KiB", "huge"):
        for threads in (1, 2):
            fresh, again = [], []
            for _ in range(a.rounds):
                time.sleep(a.pause)
                fresh.append(fill_rate(size, pages == "huge", threads))
                again.append(fill_rate(size, pages == "huge", threads))
            print(
                f"{pages:>5} pages, {threads} thread(s): "
                f"fresh {' '.join(f'{x:.2f}' for x in fresh)}  "
                f"again {' '.join(f'{x:.2f}' for x in again)}"
            )


if __name__ == "__main__":
    main()
