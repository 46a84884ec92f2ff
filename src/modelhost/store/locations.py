"""Keep user-given locations inside the places they are allowed to name.

Two checks, both pure string logic (no I/O), used at the edge before anything is fetched:

- `resolve_target_model(prefix, target)`: a multi-model endpoint's TargetModel is a path
  *relative* to the model's S3Prefix; it may not climb out (`../`), be absolute, carry a
  scheme (`s3://other-bucket/...`), a backslash, a NUL or percent-encoded tricks.
- `confine(uri, allowed, member)`: ModelDataUrl, transform inputs and async InputLocation
  must start with one of the configured prefixes (`allowed_data_prefixes`), on a `/`
  boundary (`s3://bucket` does not admit `s3://bucket-evil`), after removing dot segments.
  Local paths under the server's home directory (keys, database) are always refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from modelhost.errors import ValidationException

MAX_TARGET_MODEL_CHARS = 1024


def _refuse(member: str, value: str, rule: str) -> ValidationException:
    return ValidationException(
        f"1 validation error detected: Value '{value[:200]}' at '{member}' failed to satisfy "
        f"constraint: {rule}"
    )


def resolve_target_model(prefix: str, target: str, member: str = "targetModel") -> str:
    """`prefix` joined with the relative `target`, or ValidationException if it escapes."""
    if not target or len(target) > MAX_TARGET_MODEL_CHARS:
        raise _refuse(
            member, target, f"Member must have length between 1 and {MAX_TARGET_MODEL_CHARS}"
        )
    decoded = unquote(target)
    for text in {target, decoded}:
        if "\\" in text or "\0" in text or any(ord(c) < 32 for c in text):
            raise _refuse(member, target, "Member must not contain control characters or '\\'")
        if text.startswith("/") or "://" in text or text.startswith("~"):
            raise _refuse(member, target, "Member must be a path relative to the model prefix")
        if ".." in text.split("/"):
            raise _refuse(member, target, "Member must not contain '..' path segments")
    return prefix.rstrip("/") + "/" + target


def normalize(uri: str) -> str:
    """Lower-case scheme, dot segments resolved; a bare path becomes file://."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if not scheme:
        scheme, netloc, path = "file", "", uri
    else:
        netloc, path = parts.netloc, parts.path
    if ".." in unquote(path).split("/"):
        raise _refuse("location", uri, "Member must not contain '..' path segments")
    return f"{scheme}://{netloc}{path}"


def within(uri: str, prefix: str) -> bool:
    """Whether normalized `uri` lies under normalized `prefix` on a path boundary."""
    u, p = normalize(uri), normalize(prefix)
    if u == p or u.rstrip("/") == p.rstrip("/"):
        return True
    return u.startswith(p if p.endswith("/") else p + "/")


def confine(uri: str, allowed: Sequence[str], member: str, forbidden: Sequence[Path] = ()) -> str:
    """Return `uri` if it is allowed, else raise ValidationException naming `member`."""
    normalized = normalize(uri)
    local = normalized.removeprefix("file://") if normalized.startswith("file://") else None
    # Resolved, so a symlink pointing into the home directory is caught as well.
    real = f"file://{Path(unquote(local)).resolve()}" if local else normalized
    for path in forbidden:
        if within(real, f"file://{path.resolve()}"):
            raise _refuse(member, uri, "Member must not name the server's state directory")
    if allowed and not any(within(normalized, prefix) for prefix in allowed):
        raise _refuse(
            member, uri, "Member must start with one of the allowed prefixes: " + ", ".join(allowed)
        )
    return uri
