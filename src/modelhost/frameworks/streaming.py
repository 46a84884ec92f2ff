"""Answers a model writes as it produces them (a token streamer's generator).

A script-mode handler streams by returning an iterator instead of a body: a generator
(`yield`), an async generator, or any other iterator of `bytes`/`str` chunks, from
`predict_fn`, `output_fn` or `transform_fn` (alone or as `(iterator, content_type)`). That
is the closest convention among model servers: DJL Serving's Python handlers (used by
SageMaker's LMI containers) hand a generator to `Output.add_stream_content`, MLServer's
`predict_stream` is an async generator; the handler yields, the server writes each item as
it comes (the SageMaker inference toolkit itself has no streaming). The runtime wraps it in a
`StreamedBody`; the container (`container/streams.py`) writes one HTTP chunk per item,
flushed as it is produced, and the gateway relays each chunk as one `PayloadPart` of
InvokeEndpointWithResponseStream (InvokeEndpoint gets them joined).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from modelhost.errors import InferenceError

_BODIES = (bytes, bytearray, memoryview, str)


def is_stream(value: Any) -> bool:
    """Whether a handler's result is a stream of chunks (an iterator or async iterator;
    a body, list or array is not)."""
    if isinstance(value, _BODIES):
        return False
    return isinstance(value, Iterator | AsyncIterator)


@dataclass(frozen=True)
class StreamedBody:
    """A body written chunk by chunk: `chunks` (sync or async) and `source`, the handler
    that produced it, named in error messages (`output_fn in code/inference.py`)."""

    chunks: Iterator[Any] | AsyncIterator[Any]
    source: str

    def chunk(self, item: Any) -> bytes:
        """One item as the bytes to write (`str` is UTF-8 encoded)."""
        if isinstance(item, str):
            return item.encode()
        if isinstance(item, bytes):
            return item
        if isinstance(item, bytearray | memoryview):
            return bytes(item)
        raise InferenceError(
            f"{self.source} yielded {type(item).__name__}: yield bytes or str chunks"
        )


Body = bytes | StreamedBody
"""What a runtime's `handle` answers with: a whole body, or one written as it is produced."""
