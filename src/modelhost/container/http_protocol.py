"""uvicorn's httptools protocol writing each small response in one piece.

uvicorn writes a response's head and its body with two `transport.write` calls: two
syscalls, and two wake-ups of the peer, which on a busy machine often preempts the writer
after the first (py-spy put a quarter of an instance's samples on the head's write, more
than on the XGBoost predict). Here a head-only write (`HTTP/1.1 ...\\r\\n\\r\\n`) is held
back and sent together with the next write, the body's, in the same event-loop turn; if
no write follows in that turn (a streamed body that is not ready yet), the head goes out
alone at the next turn, so nothing waits longer than that. Closing or aborting the
connection sends (or drops) what is held first. `100 Continue` is never held.

Used by the gateway's own server (gateway/server.py) and by instances on uvicorn
(`MH_INSTANCE_HTTP_SERVER=uvicorn`, container/server.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class _OneWriteTransport:
    """A transport whose `write` joins a held response head with the body that follows."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + data)
        elif data[:9] == b"HTTP/1.1 " and data[-4:] == b"\r\n\r\n" and data[9:12] != b"100":
            self._held = data
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def one_write(base: type[asyncio.Protocol] = HttpToolsProtocol) -> type[asyncio.Protocol]:
    """`base` (uvicorn's httptools protocol or a subclass) writing responses in one piece;
    pass the result as uvicorn's `http=`."""

    class OneWriteHttpToolsProtocol(base):  # type: ignore[valid-type,misc]
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            wrapped = _OneWriteTransport(transport, self.loop)  # type: ignore[arg-type]
            super().connection_made(wrapped)

    OneWriteHttpToolsProtocol.__name__ = OneWriteHttpToolsProtocol.__qualname__ = (
        f"OneWrite{base.__name__}"
    )
    return OneWriteHttpToolsProtocol
