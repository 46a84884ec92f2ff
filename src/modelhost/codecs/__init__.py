"""Content types: one module per media type, a registry, and typed errors.

Decoders turn a request body into a 2-D numpy array (rows × features); encoders turn a
prediction into response bytes. Errors carry the HTTP status the container answers
with (`DecodeError`/`UnsupportedContentType` → 415, `UnsupportedAccept` → 406).
"""

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
