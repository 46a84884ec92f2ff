"""Media-type parsing shared by the codec registry and the runtimes.

Both functions are cached: the hot path sees the same few header values over and over,
and a dict hit is cheaper than splitting and lower-casing on every request.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from modelhost.errors import UnsupportedAccept


@lru_cache(maxsize=256)
def media_type(value: str | None) -> str | None:
    """`'Text/CSV; charset=utf-8'` → `'text/csv'`; empty or missing → None."""
    if not value:
        return None
    base = value.split(";", 1)[0].strip().lower()
    return base or None


@lru_cache(maxsize=256)
def _choose(accept: str, supported: tuple[str, ...], default: str) -> str | None:
    # SageMaker's containers take the first supported entry in the list and ignore
    # q-values; we do the same so a given header always gives the same answer.
    for part in accept.split(","):
        candidate = media_type(part)
        if candidate is None:
            continue
        if candidate == "*/*":
            return default
        if candidate in supported:
            return candidate
        if candidate.endswith("/*"):
            prefix = candidate[:-1]
            for media in supported:
                if media.startswith(prefix):
                    return media
    return None


def choose_accept(accept: str | None, supported: Sequence[str], default: str) -> str:
    """Pick the response media type for an Accept header.

    Missing, empty or `*/*` gives `default`. Raises `UnsupportedAccept` (406) when no
    listed type is supported.
    """
    if not accept or accept == "*/*":
        return default
    chosen = _choose(accept, tuple(supported), default)
    if chosen is None:
        raise UnsupportedAccept(accept, supported)
    return chosen
