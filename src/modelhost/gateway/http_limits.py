"""uvicorn's httptools protocol with a cap on the request head (request line + headers).

httptools buffers a header until it is complete, so without a cap one connection can make
the gateway hold hundreds of megabytes before any ASGI code runs (the guard's own check
sees headers only once they are parsed). This subclass counts the bytes received while a
head is still open and answers 431 and closes the connection past the cap; at most one
read (≤ 256 KiB) beyond it is ever buffered.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_431 = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: application/json\r\n"
    b"x-amzn-errortype: RequestHeaderFieldsTooLarge\r\n"
    b"connection: close\r\n"
)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that refuses request heads larger than `max_head_bytes`."""

    max_head_bytes = 64 * 1024
    _in_head = True
    _head_bytes = 0

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._in_head or self.transport.is_closing():
            return
        self._head_bytes += len(data)
        if self._head_bytes > self.max_head_bytes:
            body = (
                b'{"__type": "RequestHeaderFieldsTooLarge", "Message": "The request head '
                b"exceeds " + str(self.max_head_bytes).encode() + b' bytes."}'
            )
            self.transport.write(_431 + b"content-length: %d\r\n\r\n" % len(body) + body)
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes = True, 0

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()


def bounded_protocol(max_head_bytes: int) -> type[asyncio.Protocol]:
    """A protocol class for `uvicorn.run(http=...)` with this cap."""
    return type(
        "BoundedHttpToolsProtocol",
        (BoundedHttpToolsProtocol,),
        {"max_head_bytes": max_head_bytes},
    )
