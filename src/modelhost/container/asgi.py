"""The few raw-ASGI pieces every instance app shares: types, reading a body, answering.

The instance apps are plain ASGI callables (no framework): these helpers are the whole
"framework", kept in one module so the single-model and multi-model apps use the same ones.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

TEXT = b"text/plain; charset=utf-8"
JSON = b"application/json"


def sends_trailers(scope: Scope) -> bool:
    """Whether the server serving `scope` takes `http.response.trailers` messages (ASGI's
    trailers extension: the instance's own server does, uvicorn over HTTP/1.1 does not)."""
    return "http.response.trailers" in (scope.get("extensions") or {})


async def read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None when the client went away."""
    message = await receive()
    if message["type"] == "http.disconnect":
        return None
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    chunks = [body]
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    extra: Headers | None = None,
) -> None:
    """One complete response (content-length, no chunking)."""
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
