"""Multipart uploads in progress: their parts live as files under `<root>/uploads/<UploadId>/`.

Parts are streamed to disk as they arrive (never held in memory), each with a JSON sidecar, so a
server restarted on the same root still knows its uploads. Completing assembles the listed parts
into one file in the store's tmp dir with `copy_file_range` (no pass through Python), takes the
CRC-64 from the parts' CRCs, and commits it as one new object version: readers see the old
object or the new one, never a mix.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from .crc64 import crc64_combine
from .errors import OssError
from .oss_xml import ListedPart, ListedUpload, PartsListing, UploadsListing
from .store import ObjectMeta, Store, spool, validate_bucket_name, validate_key

MAX_PART_NUMBER = 10_000
MIN_PART_SIZE = 100 * 1024  # every part but the last, checked at completion as OSS does
MAX_PART_SIZE = 5 << 30


@dataclass(frozen=True)
class PartInfo:
    number: int
    size: int
    etag: str  # quoted upper-case hex MD5, as in the ETag header
    md5: str  # hex digest, for the multipart ETag
    crc64: int
    last_modified: float
    data_file: str  # file name inside the upload's directory


@dataclass
class Upload:
    upload_id: str
    bucket: str
    key: str
    initiated: float
    content_type: str
    parts: dict[int, PartInfo] = field(default_factory=dict)


def no_such_upload() -> OssError:
    return OssError(
        404,
        "NoSuchUpload",
        "The specified upload does not exist. The upload ID may be invalid, or the upload may "
        "have been aborted or completed.",
    )


def _invalid_part(number: int) -> OssError:
    return OssError(
        400,
        "InvalidPart",
        "One or more of the specified parts could not be found or the specified entity tag "
        "might not have matched the part's entity tag.",
        {"PartNumber": str(number)},
    )


def _same_etag(listed: str, stored: str) -> bool:
    # Clients echo the ETag header; tolerate a missing pair of quotes and hex case.
    return listed.strip().strip('"').upper() == stored.strip('"').upper()


def multipart_etag(parts: list[PartInfo]) -> str:
    """`"<MD5 of the parts' binary MD5s>-<count>"`, as OSS (and S3) tag multipart objects."""
    digest = hashlib.md5(b"".join(bytes.fromhex(p.md5) for p in parts))
    return f'"{digest.hexdigest().upper()}-{len(parts)}"'


class Uploads:
    def __init__(self, root: Path, store: Store) -> None:
        self._dir = root / "uploads"
        self._dir.mkdir(parents=True, exist_ok=True)
        self._store = store
        self._lock = threading.Lock()
        self._uploads: dict[str, Upload] = {}
        self._last_id = ""
        self._load()

    # -- persistence ------------------------------------------------------------------------

    def _load(self) -> None:
        for upload_dir in self._dir.iterdir():
            manifest = upload_dir / "upload.json"
            if not manifest.exists():
                shutil.rmtree(upload_dir, ignore_errors=True)  # an initiate that never finished
                continue
            upload = Upload(**json.loads(manifest.read_text("utf-8")))
            for sidecar in sorted(upload_dir.glob("*.json")):
                if sidecar.name != "upload.json":
                    part = PartInfo(**json.loads(sidecar.read_text("utf-8")))
                    upload.parts[part.number] = part
            self._uploads[upload.upload_id] = upload
            self._last_id = max(self._last_id, upload.upload_id)

    def _new_id_locked(self) -> str:
        # Upper-case hex that sorts by creation (a time prefix, bumped if the clock did not
        # move), so listing uploads of one key by UploadId lists them oldest first, as OSS.
        candidate = f"{time.time_ns():016X}{uuid.uuid4().hex[:16].upper()}"
        if candidate <= self._last_id:
            candidate = f"{int(self._last_id[:16], 16) + 1:016X}{uuid.uuid4().hex[:16].upper()}"
        self._last_id = candidate
        return candidate

    # -- lookups ----------------------------------------------------------------------------

    def _get_locked(self, bucket: str, key: str, upload_id: str) -> Upload:
        upload = self._uploads.get(upload_id)
        if upload is None or upload.bucket != bucket or upload.key != key:
            raise no_such_upload()
        return upload

    def check(self, bucket: str, key: str, upload_id: str) -> None:
        """404 NoSuchUpload unless the upload is in progress."""
        with self._lock:
            self._get_locked(bucket, key, upload_id)

    def get(self, bucket: str, key: str, upload_id: str) -> Upload:
        """A copy of the upload (its parts included)."""
        with self._lock:
            upload = self._get_locked(bucket, key, upload_id)
            return replace(upload, parts=dict(upload.parts))

    # -- operations -------------------------------------------------------------------------

    def initiate(self, bucket: str, key: str, content_type: str) -> Upload:
        validate_key(key)
        self._store.require_bucket(bucket)
        with self._lock:
            upload = Upload(self._new_id_locked(), bucket, key, time.time(), content_type)
            upload_dir = self._dir / upload.upload_id
            upload_dir.mkdir()
            manifest = {k: v for k, v in asdict(upload).items() if k != "parts"}
            (upload_dir / "upload.json").write_text(json.dumps(manifest), "utf-8")
            self._uploads[upload.upload_id] = upload
        return replace(upload, parts={})

    def upload_part(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        number: int,
        chunks: Iterable[bytes],
        expected_md5: bytes | None,
    ) -> PartInfo:
        """Store part `number`, replacing an earlier upload of the same number."""
        self.check(bucket, key, upload_id)  # 404 before reading any of the body
        upload_dir = self._dir / upload_id
        data_file = f"{number:05d}-{uuid.uuid4().hex[:12]}.part"
        try:
            spooled = spool(chunks, upload_dir / data_file, expected_md5)
        except FileNotFoundError:
            raise no_such_upload() from None  # aborted or completed while this part streamed
        part = PartInfo(
            number,
            spooled.size,
            f'"{spooled.md5.hex().upper()}"',
            spooled.md5.hex(),
            spooled.crc64,
            time.time(),
            data_file,
        )
        sidecar_tmp = upload_dir / f"{uuid.uuid4().hex}.tmp"
        with self._lock:
            upload = self._uploads.get(upload_id)
            if upload is None:
                (upload_dir / data_file).unlink(missing_ok=True)
                raise no_such_upload()
            old = upload.parts.get(number)
            upload.parts[number] = part
            sidecar_tmp.write_text(json.dumps(asdict(part)), "utf-8")
            os.replace(sidecar_tmp, upload_dir / f"{number:05d}.json")
        if old is not None:
            (upload_dir / old.data_file).unlink(missing_ok=True)
        return part

    def complete(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        listed: list[tuple[int, str]] | None,
        forbid_overwrite: bool = False,
    ) -> ObjectMeta:
        """Assemble the listed (number, ETag) parts, or with `listed` None every uploaded part
        (`x-oss-complete-all: yes`), into the object; the upload is gone afterwards."""
        with self._lock:
            upload = self._get_locked(bucket, key, upload_id)
            parts = self._select_parts_locked(upload, listed)
            # Taken out under the lock: a racing Complete or Abort gets NoSuchUpload, and a
            # part still streaming in fails instead of changing what is being assembled.
            del self._uploads[upload_id]
        upload_dir = self._dir / upload_id
        try:
            meta = self._assemble(upload, parts, forbid_overwrite)
        except BaseException:
            with self._lock:  # nothing happened: the upload stays usable (e.g. after a 409)
                self._uploads[upload_id] = upload
            raise
        shutil.rmtree(upload_dir, ignore_errors=True)
        return meta

    @staticmethod
    def _select_parts_locked(
        upload: Upload, listed: list[tuple[int, str]] | None
    ) -> list[PartInfo]:
        if listed is None:
            parts = [upload.parts[n] for n in sorted(upload.parts)]
            if not parts:
                raise OssError(400, "InvalidPart", "The upload has no parts to complete.")
        else:
            if not listed:
                raise OssError(
                    400,
                    "MalformedXML",
                    "The XML you provided was not well-formed or did not validate against our "
                    "published schema.",
                )
            numbers = [n for n, _ in listed]
            if any(a >= b for a, b in itertools.pairwise(numbers)):
                raise OssError(
                    400,
                    "InvalidPartOrder",
                    "The list of parts was not in ascending order. The parts list must be "
                    "specified in order by part number.",
                )
            parts = []
            for number, etag in listed:
                part = upload.parts.get(number)
                if part is None or not _same_etag(etag, part.etag):
                    raise _invalid_part(number)
                parts.append(part)
        for part in parts[:-1]:
            if part.size < MIN_PART_SIZE:
                raise OssError(
                    400,
                    "EntityTooSmall",
                    "Your proposed upload is smaller than the minimum allowed size.",
                    {
                        "PartNumber": str(part.number),
                        "ProposedSize": str(part.size),
                        "MinSizeAllowed": str(MIN_PART_SIZE),
                    },
                )
        return parts

    def _assemble(self, upload: Upload, parts: list[PartInfo], forbid: bool) -> ObjectMeta:
        tmp = self._store.new_tmp()
        crc = 0
        try:
            with open(tmp, "wb") as out:
                for part in parts:
                    with open(self._dir / upload.upload_id / part.data_file, "rb") as src:
                        _copy_all(src.fileno(), out.fileno(), part.size)
                    crc = crc64_combine(crc, part.crc64, part.size)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        size = sum(p.size for p in parts)
        return self._store.commit(
            upload.bucket,
            upload.key,
            tmp,
            size,
            multipart_etag(parts),
            crc,
            upload.content_type,
            forbid,
        )

    def abort(self, bucket: str, key: str, upload_id: str) -> None:
        with self._lock:
            self._get_locked(bucket, key, upload_id)
            del self._uploads[upload_id]
        shutil.rmtree(self._dir / upload_id, ignore_errors=True)

    def list_uploads(
        self,
        bucket: str,
        prefix: str,
        delimiter: str,
        key_marker: str,
        upload_id_marker: str,
        max_uploads: int,
    ) -> UploadsListing:
        """Uploads in (key, UploadId) order after the markers, as ListMultipartUploads pages
        them: with a delimiter, keys sharing a prefix up to it are rolled up into one entry."""
        validate_bucket_name(bucket)
        self._store.require_bucket(bucket)
        with self._lock:
            entries = sorted(
                (u.key, u.upload_id, ListedUpload(u.key, u.upload_id, u.initiated))
                for u in self._uploads.values()
                if u.bucket == bucket and u.key.startswith(prefix)
            )
        if key_marker:
            start = (key_marker, upload_id_marker) if upload_id_marker else (key_marker, "\uffff")
            entries = entries[bisect.bisect_right([(k, i) for k, i, _ in entries], start) :]
        uploads: list[ListedUpload] = []
        prefixes: list[str] = []
        last = ("", "")
        truncated = False
        for key, upload_id, upload in entries:
            common = ""
            if delimiter:
                cut = key.find(delimiter, len(prefix))
                if cut >= 0:
                    common = key[: cut + len(delimiter)]
            if common and prefixes and prefixes[-1] == common:
                continue
            if common and key_marker.startswith(common):
                continue  # rolled up on an earlier page
            if len(uploads) + len(prefixes) >= max_uploads:
                truncated = True
                break
            if common:
                prefixes.append(common)
                last = (common, "")
            else:
                uploads.append(upload)
                last = (key, upload_id)
        next_key, next_id = last if truncated else ("", "")
        return UploadsListing(
            bucket,
            prefix,
            delimiter,
            key_marker,
            upload_id_marker,
            max_uploads,
            uploads,
            prefixes,
            truncated,
            next_key,
            next_id,
        )

    def list_parts(
        self, bucket: str, key: str, upload_id: str, marker: int, max_parts: int
    ) -> PartsListing:
        upload = self.get(bucket, key, upload_id)
        numbers = [n for n in sorted(upload.parts) if n > marker]
        page = numbers[:max_parts]
        truncated = len(numbers) > len(page)
        listed = [
            ListedPart(p.number, p.last_modified, p.etag, p.size, p.crc64)
            for p in (upload.parts[n] for n in page)
        ]
        next_marker = page[-1] if page else 0
        return PartsListing(
            bucket, key, upload_id, marker, max_parts, listed, truncated, next_marker
        )

    def describe(self) -> list[dict[str, object]]:
        """Every upload in progress, for `GET /_control/uploads`."""
        with self._lock:
            return [
                {
                    "bucket": u.bucket,
                    "key": u.key,
                    "upload_id": u.upload_id,
                    "parts": len(u.parts),
                    "bytes": sum(p.size for p in u.parts.values()),
                }
                for u in sorted(self._uploads.values(), key=lambda u: (u.bucket, u.key))
            ]


def _copy_all(src: int, dst: int, size: int) -> None:
    """Append `size` bytes of file `src` (from its start) to `dst`, in the kernel if it can."""
    offset = 0
    while offset < size:
        try:
            n = os.copy_file_range(src, dst, size - offset, offset)
        except OSError:
            n = 0
        if n == 0:
            data = os.pread(src, min(size - offset, 1 << 20), offset)
            if not data:
                raise OSError(f"part file shorter than its {size} bytes")
            n = os.write(dst, data)
        offset += n
