"""Exceptions raised by osstorchconnector.

Every error is an :class:`OssError`. Errors for a missing bucket or key are also
``FileNotFoundError``, refused requests also ``PermissionError``, and bad input (URIs, endpoints,
config or credential files, corrupt tar archives or indexes) also ``ValueError``, so generic
handlers keep working.
"""

from __future__ import annotations

from typing import Any


class OssError(Exception):
    """An error from the connector or the object store.

    Attributes:
        code: OSS error code such as ``NoSuchKey``; empty when the server sent none.
        status: HTTP status; 0 when no answer was received.
        request_id: ``x-oss-request-id`` of the failed request, for support tickets.
        bucket: Bucket of the failed request.
        key: Key of the failed request.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        status: int = 0,
        request_id: str = "",
        bucket: str = "",
        key: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.request_id = request_id
        self.bucket = bucket
        self.key = key

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Crosses process boundaries (DataLoader workers) with its attributes intact.
        return (
            _rebuild,
            (
                type(self),
                self.message,
                {
                    "code": self.code,
                    "status": self.status,
                    "request_id": self.request_id,
                    "bucket": self.bucket,
                    "key": self.key,
                },
            ),
        )


def _rebuild(cls: type[OssError], message: str, fields: dict[str, Any]) -> OssError:
    return cls(message, **fields)


class OssNotFoundError(OssError, FileNotFoundError):
    """The bucket or key does not exist (HTTP 404)."""


class OssPermissionError(OssError, PermissionError):
    """The request was refused: bad credentials, signature, or missing permission (401/403)."""


class OssConfigError(OssError, ValueError):
    """Bad input: an URI, endpoint, region, config file or credentials file."""


class OssFormatError(OssError, ValueError):
    """A file is not in the format it should be: a corrupt tar archive or tar index. The
    message names the file (path or URI) and the offset or field that is wrong."""


class OssTimeoutError(OssError, TimeoutError):
    """A request timed out."""


class OssObjectChangedError(OssError):
    """The object was replaced while it was being read (HTTP 412 on a read pinned to the
    version first seen): read it again from the start. Never raised instead of data that
    mixes two versions — this is what such a read gets."""


__all__ = [
    "OssConfigError",
    "OssError",
    "OssFormatError",
    "OssNotFoundError",
    "OssObjectChangedError",
    "OssPermissionError",
    "OssTimeoutError",
]
