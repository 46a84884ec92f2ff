"""Typed codec errors. Each carries the HTTP status the container answers with.

The statuses follow SageMaker's XGBoost/legacy containers (which clients expect):
a body that cannot be decoded or an unknown Content-Type is 415, an Accept we cannot
produce is 406. The container reads `status_code` and `message`, the same attributes the
inference toolkit's `BaseInferenceToolkitError` has, so user errors and ours map alike.
"""

from __future__ import annotations

from collections.abc import Iterable


class CodecError(Exception):
    """Base of codec errors; `message` is a one-line text that names the rule broken."""

    status_code: int = 415

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DecodeError(CodecError):
    """The body does not parse as its Content-Type says (415)."""

    status_code = 415


class UnsupportedContentType(CodecError):
    """No decoder for this Content-Type (415)."""

    status_code = 415

    def __init__(self, content_type: str | None, supported: Iterable[str]) -> None:
        super().__init__(
            f"Unsupported Content-Type {content_type!r}: use one of {', '.join(supported)}"
        )


class UnsupportedAccept(CodecError):
    """No encoder for any type the Accept header lists (406)."""

    status_code = 406

    def __init__(self, accept: str | None, supported: Iterable[str]) -> None:
        super().__init__(f"Unsupported Accept {accept!r}: use one of {', '.join(supported)}")


class EncodeError(CodecError):
    """The prediction cannot be written in the chosen type, e.g. 3-D as CSV (406)."""

    status_code = 406
