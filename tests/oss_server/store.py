"""Object storage: bytes in files named by a hash of (bucket, key), metadata in memory.

Keys may contain anything OSS allows (`a` and `a/b` both existing, trailing `/`, `%`, unicode),
so they are never mapped onto file paths. Each object has a data file and a JSON sidecar so a
server restarted on the same root (e.g. for benchmarks over pre-generated GiB objects) finds its
objects again.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import json
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

from .crc64 import Crc64
from .errors import OssError
from .generator import BLOCK_SIZE, iter_generated
from .oss_xml import ListedObject, ListPage

# Above this size a generated object gets no CRC unless asked: CRC-ing several GiB would make
# fixture setup slow, and real OSS also serves objects without one (e.g. some appendables).
GENERATE_CRC_LIMIT = 1 << 30
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class ObjectMeta:
    bucket: str
    key: str
    size: int
    etag: str  # quoted, as in the ETag header
    crc64: int | None
    last_modified: float
    content_type: str
    data_file: str  # file name inside <root>/objects


@dataclass
class _Bucket:
    # Python orders str by code point, which is the UTF-8 byte order OSS lists in (keys are
    # always valid UTF-8: the handler rejects anything else).
    keys: list[str]
    objects: dict[str, ObjectMeta]


_NO_BUCKET = _Bucket([], {})


def _already_exists() -> OssError:
    return OssError(
        409,
        "FileAlreadyExists",
        "The object you specified already exists and can not be overwritten.",
    )


@dataclass(frozen=True)
class Spooled:
    size: int
    md5: bytes  # raw digest
    crc64: int


def parse_content_md5(value: str | None) -> bytes | None:
    """The digest a Content-MD5 header announces (None if absent); 400 if it is malformed."""
    if value is None:
        return None
    try:
        digest = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != 16:
        raise OssError(400, "InvalidDigest", "The Content-MD5 you specified is not valid.")
    return digest


def spool(chunks: Iterable[bytes], path: Path, expected_md5: bytes | None = None) -> Spooled:
    """Stream `chunks` into a new file at `path`, hashing as they pass; the file is removed if
    the stream fails or its MD5 is not `expected_md5` (400 InvalidDigest, as OSS answers)."""
    md5 = hashlib.md5()
    crc = Crc64()
    size = 0
    try:
        with open(path, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
                md5.update(chunk)
                crc.update(chunk)
                size += len(chunk)
        if expected_md5 is not None and md5.digest() != expected_md5:
            raise OssError(
                400,
                "InvalidDigest",
                "The Content-MD5 you specified did not match what we received.",
            )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return Spooled(size, md5.digest(), crc.value)


def validate_bucket_name(name: str) -> None:
    if not _BUCKET_RE.match(name):
        raise OssError(400, "InvalidBucketName", f"The specified bucket is not valid: {name!r}")


def validate_key(key: str) -> None:
    if not key or len(key.encode("utf-8")) > 1023 or key[0] in "/\\":
        raise OssError(400, "InvalidObjectName", "The specified object name is not valid.")


def _after_prefix(prefix: str) -> str:
    """The smallest string sorting after every string that starts with `prefix`."""
    last = ord(prefix[-1])
    if last == 0x10FFFF:
        return prefix + "\U0010ffff"  # unreachable for real keys; keeps the bound correct enough
    return prefix[:-1] + chr(last + 1)


def _is_common_prefix(marker: str, prefix: str, delimiter: str) -> bool:
    """Whether `marker` is what this listing rolls keys up into (not a plain key)."""
    if not delimiter or not marker.startswith(prefix):
        return False
    cut = marker.find(delimiter, len(prefix))
    return cut >= 0 and cut + len(delimiter) == len(marker)


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._objects_dir = root / "objects"
        self._tmp_dir = root / "tmp"
        self._buckets_dir = root / "buckets"
        for d in (self._objects_dir, self._tmp_dir, self._buckets_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}
        self._load()

    # -- persistence ------------------------------------------------------------------------

    def _load(self) -> None:
        for marker in self._buckets_dir.iterdir():
            self._buckets.setdefault(marker.name, _Bucket([], {}))
        for sidecar in self._objects_dir.glob("*.json"):
            meta = ObjectMeta(**json.loads(sidecar.read_text("utf-8")))
            bucket = self._buckets.setdefault(meta.bucket, _Bucket([], {}))
            bucket.objects[meta.key] = meta
        for bucket in self._buckets.values():
            bucket.keys = sorted(bucket.objects)

    @staticmethod
    def _name_hash(bucket: str, key: str) -> str:
        return hashlib.sha256(f"{bucket}\0{key}".encode()).hexdigest()

    def path_of(self, meta: ObjectMeta) -> Path:
        return self._objects_dir / meta.data_file

    # -- buckets ----------------------------------------------------------------------------

    def create_bucket(self, name: str) -> None:
        validate_bucket_name(name)
        with self._lock:
            self._create_bucket_locked(name)

    def _create_bucket_locked(self, name: str) -> None:
        if name not in self._buckets:
            (self._buckets_dir / name).touch()
            self._buckets[name] = _Bucket([], {})

    def require_bucket(self, name: str) -> None:
        with self._lock:
            if name not in self._buckets:
                raise OssError(404, "NoSuchBucket", "The specified bucket does not exist.")

    # -- objects ----------------------------------------------------------------------------

    def get(self, bucket: str, key: str) -> ObjectMeta:
        with self._lock:
            b = self._buckets.get(bucket)
            if b is None:
                raise OssError(404, "NoSuchBucket", "The specified bucket does not exist.")
            meta = b.objects.get(key)
        if meta is None:
            raise OssError(404, "NoSuchKey", "The specified key does not exist.")
        return meta

    def open_object(self, bucket: str, key: str) -> tuple[ObjectMeta, BinaryIO]:
        """The current version and its data file, opened: the file keeps serving that
        version's bytes even if the object is overwritten or deleted meanwhile."""
        while True:
            meta = self.get(bucket, key)
            try:
                return meta, open(self.path_of(meta), "rb")
            except FileNotFoundError:
                # Replaced between get() and open(): the metadata already names the newer
                # version (or the key is gone, and get() says so).
                continue

    def new_tmp(self) -> Path:
        """A fresh path in the store's scratch directory (same filesystem as the objects)."""
        return self._tmp_dir / uuid.uuid4().hex

    def put(
        self,
        bucket: str,
        key: str,
        chunks: Iterable[bytes],
        content_type: str,
        expected_md5: bytes | None = None,
        forbid_overwrite: bool = False,
    ) -> ObjectMeta:
        validate_bucket_name(bucket)
        validate_key(key)
        tmp = self.new_tmp()
        spooled = spool(chunks, tmp, expected_md5)
        etag = f'"{spooled.md5.hex().upper()}"'
        return self.commit(
            bucket, key, tmp, spooled.size, etag, spooled.crc64, content_type, forbid_overwrite
        )

    def copy(
        self,
        source: tuple[str, str],
        bucket: str,
        key: str,
        content_type: str | None,
        check: Callable[[ObjectMeta], None],
        forbid_overwrite: bool = False,
    ) -> ObjectMeta:
        """Copy an object (a hard link: O(1) whatever its size). `check(source_meta)` raises to
        refuse the copy (copy-source conditions); `content_type` None keeps the source's."""
        validate_key(key)
        self.require_bucket(bucket)
        tmp = self.new_tmp()
        while True:
            meta = self.get(*source)
            check(meta)
            try:
                os.link(self.path_of(meta), tmp)
            except FileNotFoundError:
                continue  # overwritten since get(): copy the new version
            except OSError:
                shutil.copyfile(self.path_of(meta), tmp)
            break
        return self.commit(
            bucket,
            key,
            tmp,
            meta.size,
            meta.etag,
            meta.crc64,
            meta.content_type if content_type is None else content_type,
            forbid_overwrite,
        )

    def generate(
        self, bucket: str, key: str, size: int, seed: int, with_crc: bool | None = None
    ) -> ObjectMeta:
        """Write a deterministic object (see generator.py) without it crossing the network."""
        validate_bucket_name(bucket)
        validate_key(key)
        if with_crc is None:
            with_crc = size <= GENERATE_CRC_LIMIT
        tmp = self._tmp_dir / uuid.uuid4().hex
        crc = Crc64()
        try:
            with open(tmp, "wb") as f:
                for chunk in iter_generated(seed, size):
                    f.write(chunk)
                    if with_crc:
                        crc.update(chunk)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        # Multipart-style ETag (how real GiB objects are created): hashing GiBs with MD5 would
        # only slow fixtures down, and clients must not treat ETags as MD5s anyway.
        parts = max(1, -(-size // BLOCK_SIZE))
        tag = hashlib.md5(f"generated:{seed}:{size}".encode()).hexdigest().upper()
        etag = f'"{tag}-{parts}"'
        crc_value = crc.value if with_crc else None
        return self.commit(bucket, key, tmp, size, etag, crc_value, "application/octet-stream")

    def commit(
        self,
        bucket: str,
        key: str,
        tmp: Path,
        size: int,
        etag: str,
        crc: int | None,
        content_type: str,
        forbid_overwrite: bool = False,
    ) -> ObjectMeta:
        """Make the file `tmp` (in this store's tmp dir) the new version of the object, at once:
        a reader sees the old version or the new one, never a mix. `tmp` is consumed."""
        name = self._name_hash(bucket, key)
        # A fresh data file per version: readers holding the old file open keep reading the
        # old bytes, as a GET racing an overwrite does on OSS.
        data_file = f"{name}-{uuid.uuid4().hex[:12]}.data"
        meta = ObjectMeta(
            bucket,
            key,
            size,
            etag,
            crc,
            time.time(),
            content_type or "application/octet-stream",
            data_file,
        )
        with self._lock:
            refused = forbid_overwrite and key in self._buckets.get(bucket, _NO_BUCKET).objects
        if refused:
            tmp.unlink(missing_ok=True)
            raise _already_exists()
        os.replace(tmp, self._objects_dir / data_file)
        sidecar_tmp = self._tmp_dir / f"{uuid.uuid4().hex}.json"
        sidecar_tmp.write_text(json.dumps(asdict(meta)), "utf-8")
        with self._lock:
            self._create_bucket_locked(bucket)
            b = self._buckets[bucket]
            old = b.objects.get(key)
            if forbid_overwrite and old is not None:  # lost a race with another writer
                (self._objects_dir / data_file).unlink(missing_ok=True)
                sidecar_tmp.unlink(missing_ok=True)
                raise _already_exists()
            if old is None:
                bisect.insort(b.keys, key)
            b.objects[key] = meta
            os.replace(sidecar_tmp, self._objects_dir / f"{name}.json")
        if old is not None:
            (self._objects_dir / old.data_file).unlink(missing_ok=True)
        return meta

    def delete(self, bucket: str, key: str) -> None:
        with self._lock:
            b = self._buckets.get(bucket)
            if b is None:
                raise OssError(404, "NoSuchBucket", "The specified bucket does not exist.")
            old = b.objects.pop(key, None)
            if old is None:
                return  # OSS answers 204 for a missing key too
            del b.keys[bisect.bisect_left(b.keys, key)]
            (self._objects_dir / f"{self._name_hash(bucket, key)}.json").unlink(missing_ok=True)
        (self._objects_dir / old.data_file).unlink(missing_ok=True)

    # -- listing ----------------------------------------------------------------------------

    def list(
        self,
        bucket: str,
        prefix: str,
        delimiter: str,
        marker: str,
        max_keys: int,
    ) -> tuple[ListPage, str]:
        """One page of keys > `marker` under `prefix`; returns the page and its last entry.

        A marker that is itself a common prefix (the last entry of a previous page) skips every
        key under it, so a rolled-up prefix is never reported twice.
        """
        with self._lock:
            b = self._buckets.get(bucket)
            if b is None:
                raise OssError(404, "NoSuchBucket", "The specified bucket does not exist.")
            keys = b.keys
            i = bisect.bisect_left(keys, prefix)
            if marker:
                if _is_common_prefix(marker, prefix, delimiter):
                    i = max(i, bisect.bisect_left(keys, _after_prefix(marker)))
                else:
                    i = max(i, bisect.bisect_right(keys, marker))
            objects: list[ListedObject] = []
            prefixes: list[str] = []
            last = ""
            truncated = False
            while i < len(keys):
                key = keys[i]
                if not key.startswith(prefix):
                    break
                if len(objects) + len(prefixes) >= max_keys:
                    truncated = True
                    break
                if delimiter:
                    cut = key.find(delimiter, len(prefix))
                    if cut >= 0:
                        common = key[: cut + len(delimiter)]
                        prefixes.append(common)
                        last = common
                        i = bisect.bisect_left(keys, _after_prefix(common))
                        continue
                meta = b.objects[key]
                objects.append(ListedObject(key, meta.last_modified, meta.etag, meta.size))
                last = key
                i += 1
        page = ListPage(bucket, prefix, delimiter, max_keys, objects, prefixes, truncated)
        return page, last
