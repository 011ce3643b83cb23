"""Manifest files: the object list of a dataset, one entry per line.

The built-in format is the official connector's: ``key<TAB>label`` or ``key`` per line, UTF-8.
Any callable ``(io.IOBase) -> Iterable[(uri_or_key, label)]`` can stand in for the built-in
parser; :func:`manifest_entries` runs one, checks what it yields and joins ``oss_base_uri``.

How ``oss_base_uri`` and a manifest entry combine (:func:`join_uri`):

- ``oss_base_uri=""``: every entry must already be a full ``oss://bucket/key`` URI.
- otherwise the base is prepended verbatim, as the official connector does: no ``/`` is added
  (``oss://b/img-`` + ``001.png`` is ``oss://b/img-001.png``) or removed
  (``oss://b/p/`` + ``/k`` is key ``p//k``).
- an entry that already is a full ``oss://`` URI is used as it is, even with a base.
"""

from __future__ import annotations

import codecs
import io
import logging
from collections.abc import Callable, Iterable, Iterator

from .exceptions import OssConfigError

log = logging.getLogger("osstorchconnector")

ManifestParser = Callable[[io.IOBase], Iterable[tuple[str, str]]]

_SCHEMES = ("oss://", "s3://")


def imagenet_manifest_parser(reader: io.IOBase) -> Iterator[tuple[str, str]]:
    """Parses ``key<TAB>label`` / ``key`` lines into ``(key, label)`` pairs.

    The whole manifest is read at the first ``next()`` (as the official parser does); lines are
    then produced one at a time. Lines end with ``\\n`` or ``\\r\\n``; the key and the label are
    stripped of surrounding whitespace and fields after the second are ignored. Blank lines are
    skipped. A line whose key is empty (e.g. ``"\\tlabel"``) is logged at ERROR on the
    ``osstorchconnector`` logger with its 1-based line number and skipped. A leading UTF-8 byte
    order mark is dropped, so it cannot end up in the first key.

    Args:
        reader: A binary file object positioned at the start of the manifest. A text-mode file is
            accepted too.

    Yields:
        ``(key, label)``; ``label`` is ``""`` for lines without one.

    Raises:
        OssConfigError: the manifest is not UTF-8 (the message names it and the byte offset).
    """
    name = _name_of(reader)
    data: bytes | str = reader.read()
    if isinstance(data, str):
        text = data
    else:
        # Editors on Windows write a BOM; kept, it would become part of the first key (a 404).
        skip = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
        try:
            text = data[skip:].decode("utf-8")
        except UnicodeDecodeError as e:
            raise OssConfigError(
                f"manifest {name} is not UTF-8 text: invalid byte at offset {skip + e.start}"
            ) from None
    del data  # a manifest can be hundreds of MB: keep one copy, not two
    for number, line in enumerate(_lines(text), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        # Split before stripping: stripping first would turn "\tlabel" into the key "label".
        fields = line.split("\t")
        key = fields[0].strip()
        if not key:
            log.error("manifest %s line %d has an empty key, skipped: %r", name, number, line)
            continue
        label = fields[1].strip() if len(fields) > 1 else ""
        yield key, label


def _lines(text: str) -> Iterator[str]:
    """The ``\\n``-separated lines of ``text``, without building a list of them all.

    Not ``str.splitlines``: it also splits on characters that are legal in object keys
    (``\\x0b``, ``\\x1c``, ``\\u2028`` ...).
    """
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        if end < 0:
            yield text[start:]
            return
        yield text[start:end]
        start = end + 1


def manifest_entries(
    source: io.IOBase, name: str, parser: ManifestParser, base_uri: str
) -> Iterator[tuple[str, str]]:
    """Runs ``parser`` over ``source`` and yields ``(uri, label)`` with ``base_uri`` joined.

    An entry may be a tuple or a list of two str (the official connector unpacks
    ``for key, label in parser(reader)``, so both work there).

    Args:
        source: The open manifest, handed to ``parser``.
        name: The manifest's path or URI, for messages.
        parser: ``(io.IOBase) -> Iterable[(uri_or_key, label)]``.
        base_uri: ``oss_base_uri``; see :func:`join_uri`.

    Yields:
        ``(oss_uri, label)`` per entry, in the parser's order.

    Raises:
        OssConfigError: an entry is not a pair of str, has an empty key, or is not an ``oss://``
            URI while ``base_uri`` is empty. The message names the manifest and the 0-based
            entry index.
        Exception: whatever ``parser`` raises, with a note naming the manifest and the parser.
    """
    parser_name = _parser_name(parser)
    try:
        for index, entry in enumerate(parser(source)):
            if not (
                isinstance(entry, tuple | list)
                and len(entry) == 2
                and isinstance(entry[0], str)
                and isinstance(entry[1], str)
            ):
                raise OssConfigError(
                    f"manifest {name}: entry {index} from parser {parser_name} is {entry!r}, "
                    "expected a (uri_or_key, label) pair of str"
                )
            key, label = entry
            if not key:
                raise OssConfigError(
                    f"manifest {name}: entry {index} from parser {parser_name} has an empty key"
                )
            if not base_uri and not key.startswith(_SCHEMES):
                raise OssConfigError(
                    f"manifest {name}: entry {index} ({key!r}) is not an oss:// or s3:// URI "
                    'and oss_base_uri is "" (pass the oss://bucket/prefix/ the keys are '
                    "relative to)"
                )
            yield join_uri(base_uri, key), label
    except OssConfigError:
        raise  # ours, and already names the manifest
    except Exception as e:
        e.add_note(f"while reading manifest {name} with parser {parser_name}")
        raise


def join_uri(base_uri: str, key: str) -> str:
    """The URI of a manifest entry: ``base_uri + key``.

    The base is prepended verbatim, as the official connector does — no ``/`` is inserted, since a
    base may end mid-name on purpose (``oss://b/img-``). ``""`` means the manifest holds full
    URIs. A key that already is a full ``oss://`` URI is returned as it is even with a base: the
    official connector would build ``oss://b/base/oss://...``, which can only fail, whereas this
    lets one manifest of full URIs work whatever base is passed.

    Args:
        base_uri: ``oss_base_uri`` as given to ``from_manifest_file``.
        key: A key relative to the base, or a full ``oss://`` URI.

    Returns:
        The object's ``oss://`` URI (or ``key`` unchanged when the base is empty).
    """
    if not base_uri or key.startswith(_SCHEMES):
        return key
    return base_uri + key


def _name_of(reader: object) -> str:
    name = getattr(reader, "name", None)
    return str(name) if name else repr(reader)


def _parser_name(parser: object) -> str:
    name = getattr(parser, "__qualname__", None)
    return name if isinstance(name, str) else repr(parser)
