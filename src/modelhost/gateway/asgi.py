"""Small helpers for the raw-ASGI parts of the gateway (the hot path avoids a framework)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from modelhost.errors import IncompleteBody, PayloadTooLarge

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body, refusing anything over `limit` bytes without buffering it,
    and a body the client did not finish sending (it went away, or was cut off as too slow
    by gateway/http_limits.py): that part of a request is never processed."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise IncompleteBody("The client disconnected before sending the whole body.")
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(_too_large(limit))
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    if len(chunks) == 1:
        return chunks[0]
    return b"".join(chunks)


def _too_large(limit: int) -> str:
    return f"HTTP content length exceeded {limit} bytes."


def check_content_length(headers: dict[bytes, bytes], limit: int) -> None:
    raw = headers.get(b"content-length")
    if raw is not None and raw.isdigit() and int(raw) > limit:
        raise PayloadTooLarge(_too_large(limit))


async def respond(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
