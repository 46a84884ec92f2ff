"""How an instance tells the gateway that its streamed answer failed midway: a trailer.

A streamed answer is sent chunked (container/streams.py) and its status, 200, is sent
before the model has finished. So that the gateway can tell "the model finished" from "the
model failed after it started, because X", the instance's own server declares
`Trailer: x-modelhost-stream-error` in the head and, when the model raises mid-stream, ends
the chunked body properly with that trailer field, whose value is the error's text:

    0\\r\\n
    x-modelhost-stream-error: ValueError: the token model failed%0ATraceback ...\\r\\n
    \\r\\n

A stream that ends normally ends with the plain last chunk (`0\\r\\n\\r\\n`). The text is
the one the contract's error answer would carry (`invoke.error_response`), at most
`MAX_MESSAGE_CHARS`, percent-encoded where a header line could not hold it (`%`, control
characters, non-ASCII) so it is one header line whatever the model said.

Why a trailer and not a last in-band frame: the body stays exactly the model's bytes, so a
user's own server (BYOC) is read as before, and HTTP/1.1 parsers report trailers (httptools
does). The gateway turns the trailer into the stream's `ModelStreamError` (StreamBroken,
fleet/http1_stream.py) or, when it reads the answer whole (InvokeEndpoint), into the
ModelError the same failure before the first chunk would have been (fleet/http1.py). A
connection that breaks off without it (a user's server that drops it, an instance that
dies) is still a StreamBroken, without the cause. Only the instance's own server sends the
trailer: on uvicorn (`MH_INSTANCE_HTTP_SERVER=uvicorn`, no trailers over HTTP/1.1) a
streamed answer the gateway asked frames for is framed instead and a failure is an error
frame (container/stream_frames.py); otherwise a failure mid-stream breaks the connection
off as before.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

STREAM_ERROR = b"x-modelhost-stream-error"
MAX_MESSAGE_CHARS = 4096
# Everything printable in ASCII but `%` stays as it is (readable in a capture of the hop).
_SAFE = " !\"#$&'()*+,/:;<=>?@[\\]^`{|}"


def encode(message: str) -> bytes:
    """The trailer value for `message` (bounded, one header line)."""
    return quote(message.strip()[:MAX_MESSAGE_CHARS], safe=_SAFE).encode("ascii")


def decode(value: bytes) -> str:
    """The message a trailer value carries (bounded again: the value came over the wire)."""
    return unquote(value.decode("latin-1"), errors="replace")[:MAX_MESSAGE_CHARS]
