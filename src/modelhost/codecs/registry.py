"""Media type → decoder/encoder tables, and lookups that raise the typed errors.

Runtimes pick the subset they support by listing media types; the order of a list is
the order error messages show. Adding a content type means one module plus one line
in each table below.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from numpy.typing import DTypeLike, NDArray

from modelhost.codecs import csv, json, jsonlines, libsvm, npy
from modelhost.codecs.media import media_type
from modelhost.errors import UnsupportedContentType

Decoder = Callable[[bytes, DTypeLike], NDArray[Any]]
Encoder = Callable[[Any], bytes]

CSV = csv.MEDIA_TYPE
JSON = json.MEDIA_TYPE
JSONLINES = jsonlines.MEDIA_TYPE
NPY = npy.MEDIA_TYPE
LIBSVM = libsvm.MEDIA_TYPE

DECODERS: Mapping[str, Decoder] = {
    CSV: csv.decode,
    LIBSVM: libsvm.decode,
    JSON: json.decode,
    JSONLINES: jsonlines.decode,
    NPY: npy.decode,
}

# Other spellings clients send for the same formats.
ALIASES: Mapping[str, str] = {
    "text/x-libsvm": LIBSVM,
    "application/x-jsonlines": JSONLINES,
    "application/jsonl": JSONLINES,
    "application/x-ndjson": JSONLINES,
}

# Plain array encoders (the inference toolkit's behaviour).
ENCODERS: Mapping[str, Encoder] = {
    JSON: json.encode,
    CSV: csv.encode,
    NPY: npy.encode,
    JSONLINES: jsonlines.encode,
}

# SageMaker XGBoost's score-wrapped encoders.
SCORE_ENCODERS: Mapping[str, Encoder] = {
    CSV: csv.encode,
    JSON: json.encode_scores,
    JSONLINES: jsonlines.encode_scores,
    NPY: npy.encode,
}


def canonical(content_type: str | None) -> str | None:
    """Normalised media type with aliases resolved (`text/x-libsvm` → `text/libsvm`)."""
    media = media_type(content_type)
    if media is None:
        return None
    return ALIASES.get(media, media)


def decoder_for(
    content_type: str | None, supported: Sequence[str], decoders: Mapping[str, Decoder] = DECODERS
) -> tuple[str, Decoder]:
    """The canonical media type and its decoder, or `UnsupportedContentType` (415)."""
    media = canonical(content_type)
    if media is None or media not in supported or media not in decoders:
        raise UnsupportedContentType(content_type, _display(supported))
    return media, decoders[media]


def _display(supported: Sequence[str]) -> list[str]:
    return [m for m in supported if m not in ALIASES]
