"""TargetModel at the HTTP edge: the header, and the rules a TargetModel must follow
(a relative path that stays under the model's ModelDataUrl prefix). Invoking
multi-model endpoints is the data plane's (fleet/dataplane/multimodel.py)."""

from __future__ import annotations

from functools import lru_cache

from modelhost.errors import ValidationError, ValidationException
from modelhost.store.locations import resolve_target_model

TARGET_MODEL = b"x-amzn-sagemaker-target-model"
MAX_TARGET_MODEL = 1024


# A multi-model endpoint sees the same few thousand names over and over: each is checked
# once (a failed check raises and is not cached).
@lru_cache(maxsize=4096)
def validate_target_model(value: str) -> str:
    """The TargetModel if it is a relative path under the prefix; else ValidationError."""

    def refuse(rule: str) -> ValidationError:
        shown = value if len(value) <= 80 else value[:80] + "..."
        return ValidationError(
            f"1 validation error detected: Value '{shown}' at 'targetModel' failed to satisfy "
            f"constraint: {rule}"
        )

    if not value:
        raise refuse("Member must have length greater than or equal to 1")
    if len(value) > MAX_TARGET_MODEL:
        raise refuse(f"Member must have length less than or equal to {MAX_TARGET_MODEL}")
    if not value.isprintable() or value[0].isspace():
        raise refuse("Member must satisfy regular expression pattern: \\A\\S[\\p{Print}]*\\z")
    parts = value.split("/")
    if value.startswith("/") or "\\" in value or "://" in value:
        raise refuse("Member must be a path relative to the model's ModelDataUrl prefix")
    if any(p in ("..", ".") for p in parts) or value.endswith("/"):
        raise refuse("Member must name an artifact under the ModelDataUrl prefix (no '.' or '..')")
    try:  # a TargetModel must stay inside its endpoint's model prefix
        resolve_target_model("", value)
    except ValidationException as exc:
        raise ValidationError(exc.message) from exc
    return value
