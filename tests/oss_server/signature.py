"""OSS V4 (`OSS4-HMAC-SHA256`) request verification, by the official SDK's own signer.

The server never trusts what the client says it signed: it rebuilds every signing input from the
request as received (decoded path → bucket/key, decoded and strictly re-encoded query, headers,
x-oss-date) and from its own configuration (region, secret, token), lets
`alibabacloud_oss_v2.signer.SignerV4` compute the signature, and compares in constant time.
So a client signer that agrees with this server agrees with the official SDK on real requests.
"""

from __future__ import annotations

import datetime
import hmac
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

# The SDK ships no type information.
from alibabacloud_oss_v2.signer.v4 import SignerV4  # type: ignore[import-untyped]
from alibabacloud_oss_v2.types import (  # type: ignore[import-untyped]
    Credentials,
    HttpRequest,
    SigningContext,
)

from .errors import OssError

MAX_SKEW_SECONDS = 15 * 60
_ALGORITHM = "OSS4-HMAC-SHA256"
_DATE_RE = re.compile(r"^\d{8}T\d{6}Z$")


@dataclass
class AccessKey:
    id: str
    secret: str
    token: str | None = None
    expired: bool = False


class KeyTable:
    """The server's own credentials store; tests rotate and expire keys at runtime."""

    def __init__(self, keys: list[AccessKey]) -> None:
        self._lock = threading.Lock()
        self._keys = {k.id: k for k in keys}

    def get(self, key_id: str) -> AccessKey | None:
        with self._lock:
            return self._keys.get(key_id)

    def add(self, key: AccessKey) -> None:
        with self._lock:
            self._keys[key.id] = key

    def remove(self, key_id: str) -> None:
        with self._lock:
            self._keys.pop(key_id, None)

    def expire(self, key_id: str) -> None:
        with self._lock:
            if key_id in self._keys:
                self._keys[key_id].expired = True

    def describe(self) -> list[dict[str, object]]:
        """Key ids and states, never secrets or tokens."""
        with self._lock:
            return [
                {"id": k.id, "has_token": k.token is not None, "expired": k.expired}
                for k in self._keys.values()
            ]


@dataclass(frozen=True)
class ReceivedRequest:
    """What the server itself derives from the wire, i.e. every input of the signature."""

    method: str
    bucket: str | None
    key: str | None
    query: list[tuple[str, str]]  # URL-decoded names and values, in arrival order
    headers: list[tuple[str, str]]  # as received, values trimmed


@dataclass(frozen=True)
class _ParsedAuth:
    access_key_id: str
    date: str
    region: str
    product: str
    terminator: str
    additional_headers: list[str]
    signature: str


class _CapturingSigner(SignerV4):  # type: ignore[misc]
    """SignerV4 that keeps its canonical request for the SignatureDoesNotMatch error body.

    Real OSS returns the canonical request and string to sign on a mismatch; having them in
    the error makes a client signing bug a one-look diff instead of a guessing game.
    """

    def __init__(self) -> None:
        self.canonical_request = ""

    def _calc_string_to_sign(self, datetime_: str, scope: str, canonical_request: str) -> str:
        self.canonical_request = canonical_request
        return str(super()._calc_string_to_sign(datetime_, scope, canonical_request))


def strict_query(pairs: list[tuple[str, str]]) -> str:
    """Encode decoded query pairs the way OSS canonicalises them (`/` → %2F, space → %20)."""
    encoded = []
    for name, value in pairs:
        # quote() leaves only A-Za-z0-9 and `-_.~` alone with safe="", exactly the V4 set.
        n, v = quote(name, safe=""), quote(value, safe="")
        encoded.append(f"{n}={v}" if v else n)
    return "&".join(encoded)


def _deny(code: str, message: str, extra: dict[str, str] | None = None) -> OssError:
    return OssError(403, code, message, extra)


def parse_authorization(value: str) -> _ParsedAuth:
    """Parse `OSS4-HMAC-SHA256 Credential=..,[AdditionalHeaders=..,]Signature=..`.

    Fields are accepted in any order with optional spaces after commas: oss2 writes
    `Credential=.., Signature=.., AdditionalHeaders=..`, the v2 SDK writes no spaces.
    """
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != _ALGORITHM:
        raise _deny(
            "AccessDenied",
            f"Authorization header is invalid: this server only accepts {_ALGORITHM} "
            f"(got {algorithm!r}).",
        )
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, val = part.strip().partition("=")
        if not sep or name in fields:
            raise _deny("AccessDenied", "Authorization header is invalid: malformed field list.")
        fields[name] = val
    if "Credential" not in fields or "Signature" not in fields:
        raise _deny(
            "AccessDenied", "Authorization header is invalid: Credential or Signature missing."
        )
    scope = fields["Credential"].rsplit("/", 4)
    if len(scope) != 5 or not all(scope):
        raise _deny(
            "AccessDenied",
            "Authorization header is invalid: Credential must be "
            "<AccessKeyId>/<yyyymmdd>/<region>/oss/aliyun_v4_request.",
        )
    additional = [h for h in fields.get("AdditionalHeaders", "").split(";") if h]
    key_id, date, region, product, terminator = scope
    return _ParsedAuth(key_id, date, region, product, terminator, additional, fields["Signature"])


class Verifier:
    def __init__(self, region: str, keys: KeyTable, now: Callable[[], float]) -> None:
        self.region = region
        self.keys = keys
        self._now = now

    def verify(self, req: ReceivedRequest) -> AccessKey:
        """Return the request's key if its signature is valid, else raise a 403 OssError."""
        headers: dict[str, str] = {}
        for name, value in req.headers:
            lname = name.lower()
            # Repeated headers are one comma-joined value, as HTTP folds them.
            headers[lname] = f"{headers[lname]},{value}" if lname in headers else value

        auth_value = headers.get("authorization")
        if not auth_value:
            raise _deny(
                "AccessDenied",
                "The request is unsigned (no Authorization header); anonymous access is "
                "forbidden on this server.",
            )
        auth = parse_authorization(auth_value)

        key = self.keys.get(auth.access_key_id)
        if key is None:
            raise _deny(
                "InvalidAccessKeyId",
                "The OSS Access Key Id you provided does not exist in our records.",
                {"OSSAccessKeyId": auth.access_key_id},
            )
        if key.expired:
            raise _deny("SecurityTokenExpired", "The security token you provided has expired.")
        sent_token = headers.get("x-oss-security-token")
        if key.token is not None:
            if sent_token is None or not hmac.compare_digest(sent_token, key.token):
                raise _deny(
                    "InvalidSecurityToken",
                    "The security token you provided is missing or invalid.",
                )
        elif sent_token is not None:
            raise _deny(
                "InvalidSecurityToken",
                "A security token was sent for an access key that does not use one.",
            )

        signing_time = self._check_time(headers.get("x-oss-date", ""), auth)

        if auth.region != self.region:
            raise _deny(
                "SignatureDoesNotMatch",
                f"Invalid signing region in Authorization header: {auth.region!r}; "
                f"this endpoint is in {self.region!r}.",
            )
        if auth.product != "oss" or auth.terminator != "aliyun_v4_request":
            raise _deny(
                "SignatureDoesNotMatch",
                "Invalid Credential scope: it must end with /oss/aliyun_v4_request.",
            )
        if headers.get("x-oss-content-sha256") != "UNSIGNED-PAYLOAD":
            # The SDK signer always signs this header as UNSIGNED-PAYLOAD; any other value would
            # make the comparison below meaningless rather than merely fail.
            raise _deny(
                "SignatureDoesNotMatch",
                "x-oss-content-sha256 must be sent and be UNSIGNED-PAYLOAD on this server.",
            )

        headers.pop("authorization")
        query = strict_query(req.query)
        http_request = HttpRequest(
            method=req.method,
            url="http://oss-test-server/" + (f"?{query}" if query else ""),
            headers=headers,
        )
        ctx = SigningContext(
            product="oss",
            region=self.region,
            bucket=req.bucket,
            key=req.key,
            request=http_request,
            credentials=Credentials(key.id, key.secret, key.token),
            signing_time=signing_time,
            additional_headers=set(auth.additional_headers),
        )
        signer = _CapturingSigner()
        signer.sign(ctx)
        expected = parse_authorization(http_request.headers["Authorization"])
        credential_ok = expected.access_key_id == auth.access_key_id and expected.date == auth.date
        signature_ok = hmac.compare_digest(expected.signature, auth.signature)
        if not (credential_ok and signature_ok):
            raise _deny(
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you "
                "provided. Check your key and signing method.",
                {
                    "OSSAccessKeyId": key.id,
                    "SignatureProvided": auth.signature,
                    "StringToSign": ctx.string_to_sign,
                    "CanonicalRequest": signer.canonical_request,
                },
            )
        return key

    def _check_time(self, x_oss_date: str, auth: _ParsedAuth) -> datetime.datetime:
        if not _DATE_RE.match(x_oss_date):
            raise _deny(
                "AccessDenied", "x-oss-date header is missing or not in YYYYMMDDTHHMMSSZ form."
            )
        try:
            when = datetime.datetime.strptime(x_oss_date, "%Y%m%dT%H%M%SZ").replace(
                tzinfo=datetime.UTC
            )
        except ValueError:
            raise _deny("AccessDenied", "x-oss-date header is not a valid time.") from None
        now = self._now()
        if abs(now - when.timestamp()) > MAX_SKEW_SECONDS:
            server_time = datetime.datetime.fromtimestamp(now, datetime.UTC)
            raise _deny(
                "RequestTimeTooSkewed",
                "The difference between the request time and the current time is too large.",
                {
                    "RequestTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "ServerTime": server_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "MaxAllowedSkewMilliseconds": str(MAX_SKEW_SECONDS * 1000),
                },
            )
        if auth.date != x_oss_date[:8]:
            raise _deny(
                "SignatureDoesNotMatch",
                f"Invalid signing date in Authorization header: scope date {auth.date} is not "
                f"the date of x-oss-date {x_oss_date}.",
            )
        return when
