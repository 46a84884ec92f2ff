"""Codec errors, kept importable here for script-mode code; they live in `modelhost.errors`.

Each carries `status_code`, the HTTP status the container answers with (415 for a body or
Content-Type we cannot decode, 406 for an Accept we cannot produce).
"""

from __future__ import annotations

from modelhost.errors import (
    CodecError,
    DecodeError,
    EncodeError,
    UnsupportedAccept,
    UnsupportedContentType,
)

__all__ = [
    "CodecError",
    "DecodeError",
    "EncodeError",
    "UnsupportedAccept",
    "UnsupportedContentType",
]
