"""Manifest files: the object list of a dataset, one entry per line.

The built-in format is the official connector's: ``key<TAB>label`` or ``key`` per line, UTF-8.
Any callable ``(io.IOBase) -> Iterable[(uri_or_key, label)]`` can stand in for the built-in
parser.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable, Iterator

from .exceptions import OssConfigError

log = logging.getLogger("osstorchconnector")

ManifestParser = Callable[[io.IOBase], Iterable[tuple[str, str]]]


def imagenet_manifest_parser(reader: io.IOBase) -> Iterator[tuple[str, str]]:
    """Parses ``key<TAB>label`` / ``key`` lines into ``(key, label)`` pairs.

    Blank lines are skipped. A line whose key is empty (e.g. ``"\\tlabel"``) is logged with its
    line number and skipped. Fields after the second are ignored.

    Args:
        reader: A binary file object positioned at the start of the manifest.

    Yields:
        ``(key, label)``; ``label`` is ``""`` for lines without one.

    Raises:
        OssConfigError: the manifest is not UTF-8 (the message names it and the byte offset).
    """
    name = _name_of(reader)
    data = reader.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise OssConfigError(
            f"manifest {name} is not UTF-8 text: bad byte at offset {e.start}"
        ) from None
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        fields = line.split("\t")
        key = fields[0].strip()
        label = fields[1].strip() if len(fields) > 1 else ""
        if not key:
            log.error("manifest %s line %d has an empty key, skipped: %r", name, number, line)
            continue
        yield key, label


def manifest_entries(
    source: io.IOBase, name: str, parser: ManifestParser, base_uri: str
) -> Iterator[tuple[str, str]]:
    """Runs ``parser`` over ``source`` and yields ``(uri, label)`` with ``base_uri`` prepended.

    A parser that raises has a note naming the manifest and the parser attached to its
    exception; an entry that is not a pair of str is an :class:`OssConfigError`.
    """
    try:
        for index, entry in enumerate(parser(source)):
            if not (
                isinstance(entry, tuple)
                and len(entry) == 2
                and isinstance(entry[0], str)
                and isinstance(entry[1], str)
            ):
                raise OssConfigError(
                    f"manifest {name}: entry {index} from parser {_parser_name(parser)} is "
                    f"{entry!r}, expected a (uri_or_key, label) pair of str"
                )
            yield join_uri(base_uri, entry[0]), entry[1]
    except OssConfigError:
        raise
    except Exception as e:
        e.add_note(f"while reading manifest {name} with parser {_parser_name(parser)}")
        raise


def join_uri(base_uri: str, key: str) -> str:
    """``base_uri + key``, verbatim as the official connector does; ``""`` keeps ``key``.

    A key that already is a full ``oss://`` URI is used as it is even with a base, so one
    manifest of full URIs works whatever ``oss_base_uri`` is passed.
    """
    if not base_uri or key.startswith("oss://"):
        return key
    return base_uri + key


def _name_of(reader: object) -> str:
    name = getattr(reader, "name", None)
    return str(name) if name else repr(reader)


def _parser_name(parser: object) -> str:
    return getattr(parser, "__qualname__", None) or repr(parser)
