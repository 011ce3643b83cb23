"""Which OSS operation a request is, decided from its method, address, query and headers.

One classification feeds the dispatcher, the fault plan's `scope` and the per-operation stats,
so the three always agree. Names are OSS's API names (`UploadPart`, `ListObjectsV2`, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import OssError

GET_OBJECT = "GetObject"
HEAD_OBJECT = "HeadObject"
PUT_OBJECT = "PutObject"
COPY_OBJECT = "CopyObject"
DELETE_OBJECT = "DeleteObject"
INITIATE_UPLOAD = "InitiateMultipartUpload"
UPLOAD_PART = "UploadPart"
COMPLETE_UPLOAD = "CompleteMultipartUpload"
ABORT_UPLOAD = "AbortMultipartUpload"
LIST_UPLOADS = "ListMultipartUploads"
LIST_PARTS = "ListParts"
LIST_OBJECTS = "ListObjects"
LIST_OBJECTS_V2 = "ListObjectsV2"
PUT_BUCKET = "PutBucket"
# Anything the server does not model (answered 501 after the signature check).
UNSUPPORTED = "Unsupported"

ALL = (
    GET_OBJECT,
    HEAD_OBJECT,
    PUT_OBJECT,
    COPY_OBJECT,
    DELETE_OBJECT,
    INITIATE_UPLOAD,
    UPLOAD_PART,
    COMPLETE_UPLOAD,
    ABORT_UPLOAD,
    LIST_UPLOADS,
    LIST_PARTS,
    LIST_OBJECTS,
    LIST_OBJECTS_V2,
    PUT_BUCKET,
    UNSUPPORTED,
)

# Fault-plan scope groups. "get"/"head"/"list"/"put" keep the meaning they had before writes
# existed (a PUT on an object was a PutObject or a refused CopyObject).
GROUPS: dict[str, frozenset[str]] = {
    "get": frozenset({GET_OBJECT}),
    "head": frozenset({HEAD_OBJECT}),
    "list": frozenset({LIST_OBJECTS, LIST_OBJECTS_V2}),
    "put": frozenset({PUT_OBJECT, UPLOAD_PART, COPY_OBJECT}),
    "post": frozenset({INITIATE_UPLOAD, COMPLETE_UPLOAD}),
    "delete": frozenset({DELETE_OBJECT, ABORT_UPLOAD}),
    "all": frozenset(ALL),
}

# The sub-resources `/_control/stats` counts requests by (`copy` is the x-oss-copy-source
# header, the others are query parameters).
SUBRESOURCES = ("uploads", "partNumber", "uploadId", "copy")

_LIST_V2_PARAMS = frozenset(
    {
        "list-type",
        "prefix",
        "max-keys",
        "continuation-token",
        "start-after",
        "delimiter",
        "encoding-type",
        "fetch-owner",
    }
)
_LIST_V1_PARAMS = frozenset({"prefix", "marker", "max-keys", "delimiter", "encoding-type"})
_LIST_UPLOADS_PARAMS = frozenset(
    {"uploads", "prefix", "delimiter", "key-marker", "upload-id-marker", "max-uploads"}
    | {"encoding-type"}
)

# Query parameters each operation accepts; anything else is refused with 501 so a client
# relying on an unmodelled feature fails loudly instead of being silently ignored.
PARAMS: dict[str, frozenset[str]] = {
    PUT_OBJECT: frozenset(),
    COPY_OBJECT: frozenset(),
    DELETE_OBJECT: frozenset(),
    INITIATE_UPLOAD: frozenset({"uploads", "encoding-type"}),
    UPLOAD_PART: frozenset({"partNumber", "uploadId"}),
    COMPLETE_UPLOAD: frozenset({"uploadId", "encoding-type"}),
    ABORT_UPLOAD: frozenset({"uploadId"}),
    LIST_UPLOADS: _LIST_UPLOADS_PARAMS,
    LIST_PARTS: frozenset({"uploadId", "encoding-type", "max-parts", "part-number-marker"}),
    LIST_OBJECTS: _LIST_V1_PARAMS,
    LIST_OBJECTS_V2: _LIST_V2_PARAMS,
    PUT_BUCKET: frozenset(),
}


def classify(
    method: str, bucket: str | None, key: str | None, query: dict[str, str], copy_source: bool
) -> str:
    """The operation a request asks for (UNSUPPORTED when the server does not model it)."""
    if bucket is None:
        return UNSUPPORTED
    if key is None:
        if method == "GET":
            if "uploads" in query:
                return LIST_UPLOADS
            if "list-type" not in query:
                return LIST_OBJECTS
            return LIST_OBJECTS_V2  # list-type other than 2 is refused by the operation
        if method == "PUT" and not query:
            return PUT_BUCKET
        return UNSUPPORTED
    if method in ("GET", "HEAD"):
        if "uploadId" in query:
            return LIST_PARTS if method == "GET" else UNSUPPORTED
        return GET_OBJECT if method == "GET" else HEAD_OBJECT
    if method == "PUT":
        if "partNumber" in query or "uploadId" in query:
            # UploadPartCopy (a part copied from another object) is not modelled.
            return UNSUPPORTED if copy_source else UPLOAD_PART
        return COPY_OBJECT if copy_source else PUT_OBJECT
    if method == "POST":
        if "uploads" in query:
            return INITIATE_UPLOAD
        if "uploadId" in query:
            return COMPLETE_UPLOAD
        return UNSUPPORTED
    if method == "DELETE":
        return ABORT_UPLOAD if "uploadId" in query else DELETE_OBJECT
    return UNSUPPORTED


def subresources(query: dict[str, str], copy_source: bool) -> list[str]:
    """The SUBRESOURCES a request carries, for the stats."""
    found = [name for name in SUBRESOURCES[:3] if name in query]
    if copy_source:
        found.append("copy")
    return found


def check_params(operation: str, query: dict[str, str]) -> None:
    """Refuse query parameters the operation does not model (GetObject takes response-*)."""
    if operation in (GET_OBJECT, HEAD_OBJECT):
        unknown = sorted(q for q in query if not q.startswith("response-"))
    else:
        unknown = sorted(set(query) - PARAMS.get(operation, frozenset()))
    if unknown:
        raise OssError(
            501, "NotImplemented", f"{operation}: sub-resources {unknown} are not supported."
        )


@dataclass(frozen=True)
class DataRequest:
    """A verified request to the OSS API, as the operations see it."""

    method: str
    operation: str
    bucket: str
    key: str | None
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names

    @property
    def object_key(self) -> str:
        assert self.key is not None, f"{self.operation} addresses an object"
        return self.key


def encoding_type(query: dict[str, str]) -> str:
    encoding = query.get("encoding-type", "")
    if encoding not in ("", "url"):
        raise OssError(400, "InvalidArgument", "encoding-type must be url.")
    return encoding


def bounded_int(query: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter in [low, high] (400 InvalidArgument otherwise)."""
    raw = query.get(name, "")
    if raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise OssError(
            400, "InvalidArgument", f"{name} must be an integer between {low} and {high}."
        )
    return int(raw)
