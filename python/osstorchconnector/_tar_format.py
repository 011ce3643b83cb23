"""Reading tar member headers: ustar, pax (``x`` records ``path`` and ``size``; ``g`` global
headers skipped), GNU long names (``L``) and long links (``K``), old GNU and v7.

Two uses: scanning a whole archive through a ``read_at(offset, size)`` callable to build its
index, and parsing the headers at the start of one member's byte range after a ranged GET.
No I/O of its own.

Rules follow the official connector where its index depends on them: an entry's first block is
the block after the previous entry, so ``x``/``g``/``L``/``K`` headers before it count as its
own; only typeflags ``0``, NUL and ``7`` are regular files; links, devices, directories and
FIFOs ('1'-'6') have no data whatever their size field says; the first all-zero block (or the
end of the file) ends the archive.

Where the official fails or misreads, this reads as ``tarfile`` and GNU tar do: the data of
unknown typeflags is skipped (the official stops on a checksum error), GNU base-256 sizes of
8 GiB and more are read (the official reads them as 0 and mis-indexes the archive), and a
POSIX ustar prefix field is joined to the name (how the official names such members was not
observed). Old GNU sparse members ('S') raise, as the official fails on them too.

<https://pubs.opengroup.org/onlinepubs/9699919799/utilities/pax.html>
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple

from .exceptions import OssFormatError

BLOCK_SIZE = 512
# Reads up to `size` bytes at `offset`; fewer only at the end of the archive.
ReadAt = Callable[[int, int], bytes]

_REGULAR = frozenset(b"07\0")
_WITHOUT_DATA = frozenset(b"123456")
_PAX = frozenset(b"xX")  # 'X': the Solaris spelling of 'x'
_GLOBAL, _LONG_NAME, _LONG_LINK, _OLD_GNU_SPARSE = b"g"[0], b"L"[0], b"K"[0], b"S"[0]
_POSIX_MAGIC = b"ustar\x0000"  # the only one with a name prefix field; GNU's is "ustar  \0"
# Extended headers carry a few names and numbers; more than this is a corrupt size field.
_MAX_EXTENSION = 1 << 20
_CHECKSUM = slice(148, 156)
_HIGH_BYTES = bytes(range(0x80, 0x100))


class TarEntry(NamedTuple):
    """One entry of an archive, with the extended headers before it applied."""

    header_block: int  # block of its first header, counting x/g/L/K headers before it
    name: str  # as a dataset reports it: one leading "./" removed, a leading "/" kept
    data_offset: int  # byte offset of its data in the archive
    size: int  # bytes of data
    typeflag: bytes  # one byte: b"0", b"\0", b"7", b"5", ...
    end_block: int  # block just past its data and padding: where the next entry starts
    gnu_sparse: bool = False  # pax-format GNU sparse file: its data is a map plus chunks

    @property
    def is_regular(self) -> bool:
        return self.typeflag[0] in _REGULAR


def _blocks(size: int) -> int:
    return -(-size // BLOCK_SIZE)


def _bad(archive: str, offset: int, why: str) -> OssFormatError:
    return OssFormatError(f"{archive} is not a valid tar archive at byte {offset}: {why}")


def _number(field: bytes, what: str, archive: str, offset: int) -> int:
    """A numeric header field: octal text (NUL- or space-padded on either side, empty = 0),
    or GNU base-256 when the first byte has its top bit set (sizes of 8 GiB and more)."""
    if field[:1] == b"\x80":
        return int.from_bytes(field[1:], "big")
    if field[:1] == b"\xff":
        raise _bad(archive, offset, f"negative {what} field {field.hex()}")
    text = field.split(b"\0", 1)[0].strip(b" ")
    if text.translate(None, b"01234567"):
        raise _bad(archive, offset, f"{what} field {field!r} is not octal")
    return int(text, 8) if text else 0


def _check_checksum(block: bytes, archive: str, offset: int) -> None:
    stored = _number(block[_CHECKSUM], "checksum", archive, offset)
    # The sum is taken with the checksum field read as eight spaces.
    rest = block[:148] + block[156:]
    unsigned = sum(rest) + 8 * ord(" ")
    if stored == unsigned:
        return
    # Some old writers summed signed chars; readers accept both.
    high_bytes = len(rest) - len(rest.translate(None, _HIGH_BYTES))
    if stored != unsigned - 256 * high_bytes:
        raise _bad(archive, offset, f"header checksum is {stored}, the header sums to {unsigned}")


def _header_name(block: bytes) -> bytes:
    name = block[:100].split(b"\0", 1)[0]
    if block[257:265] == _POSIX_MAGIC:
        prefix = block[345:500].split(b"\0", 1)[0]
        if prefix:
            return prefix + b"/" + name
    return name


def _pax_records(data: bytes, archive: str, offset: int) -> dict[bytes, bytes]:
    """The ``"<length> <key>=<value>\\n"`` records of a pax extended header. Later records win,
    as in every reader; trailing NULs (block padding some writers count in) are ignored."""
    records: dict[bytes, bytes] = {}
    at = 0
    data = data.rstrip(b"\0")
    while at < len(data):
        length_text, space, _ = data[at : at + 24].partition(b" ")
        if not space or not length_text.isdigit():
            raise _bad(archive, offset, f"pax record at +{at} has no length")
        record = data[at : at + int(length_text)]
        key, equals, value = record[len(length_text) + 1 :].partition(b"=")
        if not equals or not record.endswith(b"\n") or len(record) != int(length_text):
            raise _bad(archive, offset, f"pax record at +{at} is malformed: {record[:60]!r}")
        records[key] = value[:-1]
        at += len(record)
    return records


def _decode_name(raw: bytes) -> str:
    # Tar names are bytes; UTF-8 is what every current writer uses, and surrogateescape keeps
    # any other bytes round-trippable (as os.fsdecode does).
    name = raw.decode("utf-8", "surrogateescape")
    return name[2:] if name.startswith("./") else name


def read_entry(read_at: ReadAt, block: int, archive: str) -> TarEntry | None:
    """The entry whose first header is at ``block``, or None at the end of the archive (an
    all-zero block or the end of the file).

    Raises:
        OssFormatError: a bad checksum or field, a truncated header, a GNU ``S`` sparse member
            (its data needs a sparse map this reader does not apply), or extended headers that
            are not followed by an entry; the message names ``archive`` and the byte offset.
    """
    first = block
    pax: dict[bytes, bytes] = {}
    long_name: bytes | None = None
    while True:
        offset = block * BLOCK_SIZE
        header = read_at(offset, BLOCK_SIZE)
        if len(header) == 0 or header == bytes(BLOCK_SIZE):
            if block != first:
                raise _bad(archive, offset, "the archive ends after an extended header")
            return None
        if len(header) < BLOCK_SIZE:
            raise _bad(archive, offset, f"truncated header ({len(header)} of 512 bytes)")
        _check_checksum(header, archive, offset)
        kind = header[156]
        size = _number(header[124:136], "size", archive, offset)
        if kind in _PAX or kind in (_GLOBAL, _LONG_NAME, _LONG_LINK):
            if size > _MAX_EXTENSION:
                raise _bad(archive, offset, f"extended header of {size} bytes")
            data = read_at(offset + BLOCK_SIZE, size)
            if len(data) != size:
                raise _bad(archive, offset, f"extended header data truncated at {len(data)} B")
            if kind in _PAX:
                pax.update(_pax_records(data, archive, offset))
            elif kind == _LONG_NAME:
                long_name = data.split(b"\0", 1)[0]
            block += 1 + _blocks(size)  # 'g' and 'K' carry nothing a dataset uses
            continue
        if kind == _OLD_GNU_SPARSE:
            raise _bad(archive, offset, "GNU sparse members ('S') are not supported")
        name = pax.get(b"path") or long_name or _header_name(header)
        if b"size" in pax:
            if not pax[b"size"].isdigit():
                raise _bad(archive, offset, f"pax size {pax[b'size']!r} is not a number")
            size = int(pax[b"size"])
        data_blocks = 0 if kind in _WITHOUT_DATA else _blocks(size)
        return TarEntry(
            header_block=first,
            name=_decode_name(name),
            data_offset=offset + BLOCK_SIZE,
            size=0 if kind in _WITHOUT_DATA else size,
            typeflag=bytes([kind]),
            end_block=block + 1 + data_blocks,
            gnu_sparse=any(key.startswith(b"GNU.sparse.") for key in pax),
        )


def iter_entries(
    read_at: ReadAt, archive: str, archive_size: int | None = None
) -> Iterator[TarEntry]:
    """Every entry of an archive, regular or not, in order.

    Args:
        read_at: reads the archive (see ``ReadAt``).
        archive: its path or URI, for messages.
        archive_size: its length, when known: an entry whose data runs past it raises instead
            of being listed (the official lists it, and reading it fails later).
    """
    block = 0
    while (entry := read_entry(read_at, block, archive)) is not None:
        if archive_size is not None and entry.data_offset + entry.size > archive_size:
            raise _bad(
                archive,
                entry.data_offset,
                f"{entry.name!r} needs {entry.size} bytes of data; the archive has "
                f"{archive_size - entry.data_offset}",
            )
        yield entry
        block = entry.end_block


def scan_members(
    read_at: ReadAt, archive: str, archive_size: int | None = None
) -> Iterator[TarEntry]:
    """The regular-file members of an archive, in order (what an index lists)."""
    return (entry for entry in iter_entries(read_at, archive, archive_size) if entry.is_regular)


def index_blocks(
    read_at: ReadAt, archive: str, archive_size: int | None = None
) -> tuple[list[int], int]:
    """The first block of each regular member, and the block where the archive's entries end
    (0 when it has none): the arguments of ``_tar_index.encode_index``."""
    starts: list[int] = []
    end = 0
    for entry in iter_entries(read_at, archive, archive_size):
        if entry.is_regular:
            starts.append(entry.header_block)
        end = entry.end_block
    return starts, end


def parse_member(buf: bytes | memoryview, base_offset: int, archive: str) -> TarEntry:
    """The member whose headers start ``buf``, which holds the archive's bytes from
    ``base_offset`` on (a ranged GET of one or more members). Its data is
    ``buf[entry.data_offset - base_offset:][:entry.size]``, when ``buf`` reaches that far.

    Raises:
        OssFormatError: ``buf`` does not start with the headers of a regular file (so the index
            does not match the archive), or they are corrupt or cut off.
    """
    if base_offset % BLOCK_SIZE:
        raise ValueError(f"base_offset {base_offset} is not a multiple of {BLOCK_SIZE}")
    view = memoryview(buf)

    def read_at(offset: int, size: int) -> bytes:
        return bytes(view[offset - base_offset : offset - base_offset + size])

    entry = read_entry(read_at, base_offset // BLOCK_SIZE, archive)
    if entry is None:
        raise _bad(archive, base_offset, "no member here (end of archive)")
    if not entry.is_regular:
        raise _bad(archive, base_offset, f"{entry.name!r} has type {entry.typeflag!r}, not a file")
    if entry.gnu_sparse:
        raise _bad(archive, base_offset, f"{entry.name!r} is a GNU sparse file: not supported")
    return entry
