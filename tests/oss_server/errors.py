"""OSS error responses: the exception the handlers raise and the codes they use."""

from __future__ import annotations

# Values of `<EC>` / `x-oss-ec`. Real OSS uses such ids to point at its troubleshooting pages;
# these are plausible stand-ins — clients must only echo them, never interpret them.
_EC = {
    "AccessDenied": "0003-00000001",
    "InvalidAccessKeyId": "0002-00000902",
    "SignatureDoesNotMatch": "0002-00000040",
    "RequestTimeTooSkewed": "0002-00000504",
    "InvalidSecurityToken": "0002-00000903",
    "SecurityTokenExpired": "0002-00000905",
    "NoSuchBucket": "0015-00000101",
    "NoSuchKey": "0026-00000001",
    "InvalidRange": "0017-00000013",
    "PreconditionFailed": "0026-00000002",
    "InvalidArgument": "0017-00000001",
    "InvalidObjectName": "0016-00000005",
    "InvalidBucketName": "0015-00000001",
    "MissingContentLength": "0016-00000103",
    "NotImplemented": "0000-00000001",
    "MethodNotAllowed": "0000-00000002",
    "InternalError": "0000-00000003",
    "ServiceUnavailable": "0000-00000004",
    "NoSuchUpload": "0042-00000002",
    "InvalidPart": "0042-00000003",
    "InvalidPartOrder": "0042-00000004",
    "EntityTooSmall": "0042-00000005",
    "EntityTooLarge": "0016-00000102",
    "MalformedXML": "0042-00000006",
    "InvalidDigest": "0016-00000104",
    "FileAlreadyExists": "0026-00000003",
}


def error_code_ec(code: str) -> str:
    return _EC.get(code, "0000-00000000")


class OssError(Exception):
    """An error answer: raised anywhere in request handling, rendered by the handler."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        extra: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        # Additional `<Error>` children as real OSS adds them (StringToSign, ServerTime, ...).
        self.extra = extra or {}
        self.headers = headers or {}
