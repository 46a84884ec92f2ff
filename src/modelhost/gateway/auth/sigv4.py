"""AWS Signature Version 4 verification, exactly as botocore signs (reference §5, §8.2).

Pure functions over the request as it arrived (method, raw path, raw query, header pairs,
payload hash) with an injected clock; the ASGI glue lives in `guard.py`. The canonical
request mirrors botocore's `SigV4Auth.canonical_request`:

- the canonical URI is the already percent-encoded path with dot segments and empty
  segments removed, **encoded again** (`/endpoints/a%20b` → `/endpoints/a%2520b`);
- the canonical query string is the raw query split on `&` and sorted, not re-encoded;
- only the headers named in `SignedHeaders` count (botocore never signs `User-Agent` or the
  `amz-sdk-*` headers), values trimmed, repeated headers joined with `,`;
- the payload hash is the `X-Amz-Content-Sha256` header when the client sent one (possibly
  `UNSIGNED-PAYLOAD`), else the hex SHA-256 of the body.

Presigned requests (`X-Amz-Signature` in the query) are verified too; for non-S3 services
botocore hashes their body like any other request.
"""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote

from modelhost.errors import (
    IncompleteSignatureException,
    InvalidSignatureException,
    MissingAuthenticationTokenException,
    UnrecognizedClientException,
)

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
# AWS refuses presigned URLs valid for longer than 7 days.
MAX_PRESIGN_EXPIRES_S = 7 * 24 * 3600

_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+)\s*,\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+)\s*,\s*Signature=(?P<signature>[0-9a-f]{64})\s*$"
)
_HEX64_RE = re.compile(r"^[0-9a-f]{64}$")
_TIMESTAMP_RE = re.compile(r"^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$")
_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service "
    "documentation for details."
)


@dataclass(slots=True)
class SignedRequest:
    """What the verifier needs from one HTTP request, as received on the wire."""

    method: str
    raw_path: str
    raw_query: str
    headers: Sequence[tuple[str, str]]  # lower-case names, latin-1 decoded values
    scheme: str = "http"


@dataclass(slots=True)
class Credential:
    """The parsed signature of a request; `payload_hash` still has to match the body."""

    access_key_id: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    timestamp: str
    presigned: bool
    expires_s: int | None
    payload_hash: str | None  # the client's X-Amz-Content-Sha256 (or UNSIGNED-PAYLOAD)
    issued_s: float = 0.0  # X-Amz-Date as epoch seconds

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


def remove_dot_segments(path: str) -> str:
    """botocore's `remove_dot_segments`: RFC 3986 §5.2.4, also dropping empty segments."""
    if not path:
        return "/"
    output: list[str] = []
    for part in path.split("/"):
        if part and part != ".":
            if part == "..":
                if output:
                    output.pop()
            else:
                output.append(part)
    first = "/" if path[0] == "/" else ""
    last = "/" if path[-1] == "/" and output else ""
    return first + "/".join(output) + last


def canonical_uri(raw_path: str) -> str:
    return quote(remove_dot_segments(raw_path), safe="/~")


def canonical_query(raw_query: str, drop_signature: bool = False) -> str:
    if not raw_query:
        return ""
    pairs: list[tuple[str, str]] = []
    for pair in raw_query.split("&"):
        key, _, value = pair.partition("=")
        if drop_signature and key == "X-Amz-Signature":
            continue
        pairs.append((key, value))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def _canonical_host(value: str, scheme: str) -> str:
    value = value.lower()
    default = {"http": ":80", "https": ":443"}.get(scheme)
    if default and value.endswith(default):
        return value[: -len(default)]
    return value


def canonical_headers(
    headers: Sequence[tuple[str, str]], signed: Sequence[str], scheme: str
) -> str:
    values: dict[str, list[str]] = {}
    wanted = set(signed)
    for name, value in headers:
        if name in wanted:
            values.setdefault(name, []).append(" ".join(value.split()))
    lines = []
    for name in signed:
        if name not in values:
            raise InvalidSignatureException(
                f"Header '{name}' is listed in SignedHeaders but missing from the request."
            )
        joined = ",".join(values[name])
        if name == "host":
            joined = _canonical_host(joined, scheme)
        lines.append(f"{name}:{joined}")
    return "\n".join(lines) + "\n"


def canonical_request(request: SignedRequest, cred: Credential, payload_hash: str) -> str:
    return "\n".join(
        [
            request.method.upper(),
            canonical_uri(request.raw_path),
            canonical_query(request.raw_query, drop_signature=cred.presigned),
            canonical_headers(request.headers, cred.signed_headers, request.scheme),
            ";".join(cred.signed_headers),
            payload_hash,
        ]
    )


def string_to_sign(cred: Credential, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{cred.timestamp}\n{cred.scope}\n{digest}"


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _header(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def _query_params(raw_query: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in raw_query.split("&"):
        key, _, value = pair.partition("=")
        params.setdefault(unquote(key), unquote(value))
    return params


def parse(request: SignedRequest) -> Credential:
    """The request's signature fields (Authorization header or presigned query)."""
    auth = _header(request.headers, "authorization")
    presigned = auth is None and "X-Amz-Signature=" in request.raw_query
    expires: int | None = None
    if auth is not None:
        credential, signed, signature = _authorization_fields(auth)
        timestamp = _header(request.headers, "x-amz-date")
    elif presigned:
        credential, signed, signature, timestamp, expires = _presigned_fields(request.raw_query)
    else:
        raise MissingAuthenticationTokenException("Missing Authentication Token")
    parts = _credential_scope(credential)
    if timestamp is None:
        raise IncompleteSignatureException("The request must carry an X-Amz-Date header.")
    issued_s = parse_timestamp(timestamp)
    if parts[1] != timestamp[:8]:
        raise InvalidSignatureException(
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{parts[1]}' != '{timestamp[:8]}', from '{timestamp}'."
        )
    signed_headers = tuple(signed.split(";"))
    content_hash = _header(request.headers, "x-amz-content-sha256")
    _check_signed_headers(signed_headers, header_auth=auth is not None, content_hash=content_hash)
    return Credential(
        access_key_id=parts[0],
        date=parts[1],
        region=parts[2],
        service=parts[3],
        signed_headers=signed_headers,
        signature=signature,
        timestamp=timestamp,
        presigned=presigned,
        expires_s=expires,
        payload_hash=content_hash,
        issued_s=issued_s,
    )


def _authorization_fields(auth: str) -> tuple[str, str, str]:
    """Credential, SignedHeaders and Signature of an `Authorization` header."""
    if not auth.startswith(ALGORITHM):
        raise IncompleteSignatureException(
            f"Authorization header requires the {ALGORITHM} scheme: "
            "Credential=, SignedHeaders= and Signature= parameters."
        )
    match = _AUTH_RE.match(auth)
    if match is None:
        raise IncompleteSignatureException(
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' "
            f"parameters in the form '{ALGORITHM} Credential=AKID/date/region/service/"
            "aws4_request, SignedHeaders=a;b, Signature=<64 hex>'."
        )
    return match["credential"], match["signed"], match["signature"]


def _presigned_fields(raw_query: str) -> tuple[str, str, str, str, int]:
    """Credential, SignedHeaders, Signature, Date and Expires of a presigned URL."""
    params = _query_params(raw_query)
    if params.get("X-Amz-Algorithm") != ALGORITHM:
        raise IncompleteSignatureException(f"X-Amz-Algorithm must be {ALGORITHM}.")
    try:
        credential = params["X-Amz-Credential"]
        signed = params["X-Amz-SignedHeaders"]
        signature = params["X-Amz-Signature"]
        timestamp = params["X-Amz-Date"]
        expires = int(params["X-Amz-Expires"])
    except (KeyError, ValueError) as exc:
        raise IncompleteSignatureException(
            "A presigned request needs X-Amz-Credential, X-Amz-SignedHeaders, "
            "X-Amz-Signature, X-Amz-Date and a numeric X-Amz-Expires."
        ) from exc
    if not _HEX64_RE.match(signature):
        raise IncompleteSignatureException("X-Amz-Signature must be 64 hex digits.")
    if not 1 <= expires <= MAX_PRESIGN_EXPIRES_S:
        raise IncompleteSignatureException(
            f"X-Amz-Expires must be between 1 and {MAX_PRESIGN_EXPIRES_S} seconds."
        )
    return credential, signed, signature, timestamp, expires


def _credential_scope(credential: str) -> list[str]:
    """`AKID/yyyymmdd/region/service/aws4_request` split in its five parts."""
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not all(parts):
        raise IncompleteSignatureException(
            f"Credential '{credential}' must have the form "
            "<AccessKeyId>/<yyyymmdd>/<region>/<service>/aws4_request."
        )
    return parts


def _check_signed_headers(
    signed_headers: tuple[str, ...], *, header_auth: bool, content_hash: str | None
) -> None:
    if list(signed_headers) != sorted(set(signed_headers)) or "host" not in signed_headers:
        raise IncompleteSignatureException(
            "SignedHeaders must be sorted, unique, lower-case and include 'host'."
        )
    if header_auth and "x-amz-date" not in signed_headers:
        raise IncompleteSignatureException("SignedHeaders must include 'x-amz-date'.")
    if content_hash is not None and "x-amz-content-sha256" not in signed_headers:
        # An unsigned content hash could be swapped for UNSIGNED-PAYLOAD by anyone.
        raise IncompleteSignatureException("X-Amz-Content-Sha256 must be a signed header.")
    if content_hash not in (None, UNSIGNED_PAYLOAD) and not _HEX64_RE.match(content_hash or ""):
        raise InvalidSignatureException(
            "X-Amz-Content-Sha256 must be UNSIGNED-PAYLOAD or 64 lower-case hex digits."
        )


def parse_timestamp(timestamp: str) -> float:
    """`YYYYMMDDTHHMMSSZ` as epoch seconds (strptime is slow on the request path)."""
    match = _TIMESTAMP_RE.match(timestamp)
    try:
        if match is None:
            raise ValueError(timestamp)
        fields = [int(g) for g in match.groups()]
        dt.datetime(*fields)  # type: ignore[arg-type]  # validates month, day, hour ...
    except ValueError as exc:
        raise IncompleteSignatureException(
            f"X-Amz-Date '{timestamp}' is not in the form YYYYMMDDTHHMMSSZ."
        ) from exc
    return float(calendar.timegm((*fields, 0, 0, 0)))


def check_time(cred: Credential, now_s: float, max_skew_s: float) -> None:
    """Refuse stale or future requests: header signatures within ±max_skew_s, presigned
    ones from (issue time - max_skew_s) until they expire."""
    issued_s = cred.issued_s
    if abs(now_s - issued_s) <= max_skew_s and not cred.presigned:
        return
    now = _fmt(now_s)
    minutes = f"{max_skew_s / 60:g} min."
    if issued_s - now_s > max_skew_s:
        raise InvalidSignatureException(
            f"Signature not yet current: {cred.timestamp} is still later than "
            f"{_fmt(now_s + max_skew_s)} ({now} + {minutes})"
        )
    if cred.presigned:
        assert cred.expires_s is not None
        if now_s > issued_s + cred.expires_s:
            raise InvalidSignatureException(
                f"Signature expired: presigned at {cred.timestamp} for {cred.expires_s} s; "
                f"it is now {now}."
            )
    elif now_s - issued_s > max_skew_s:
        raise InvalidSignatureException(
            f"Signature expired: {cred.timestamp} is now earlier than "
            f"{_fmt(now_s - max_skew_s)} ({now} - {minutes})"
        )


def _fmt(epoch_s: float) -> str:
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).strftime(TIMESTAMP_FORMAT)


def verify(
    request: SignedRequest,
    cred: Credential,
    payload_hash: str,
    key_for: Callable[[Credential], bytes],
) -> None:
    """Recompute the signature with the key `key_for` derives; raise on mismatch.

    `payload_hash` is the hex SHA-256 of the body, or the client's declared hash (which the
    caller must compare with the body it reads), or UNSIGNED-PAYLOAD.
    """
    canonical = canonical_request(request, cred, payload_hash)
    expected = hmac.new(
        key_for(cred), string_to_sign(cred, canonical).encode("utf-8"), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, cred.signature):
        raise InvalidSignatureException(_SIGNATURE_MISMATCH)


def unknown_key(cred: Credential) -> UnrecognizedClientException:
    return UnrecognizedClientException(
        "The security token included in the request is invalid."
        f" (unknown or revoked access key {cred.access_key_id})"
    )
