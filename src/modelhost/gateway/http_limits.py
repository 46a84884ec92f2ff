"""uvicorn's httptools protocol with limits a slow or hostile client cannot get around.

- **Head size.** httptools buffers a header until it is complete, so without a cap one
  connection can make the gateway hold hundreds of megabytes before any ASGI code runs (the
  guard's own check sees headers only once they are parsed). The bytes received while a
  head is still open are counted; past the cap the answer is 431 and the connection closes;
  at most one read (≤ 256 KiB) beyond it is ever buffered.
- **Head time** (slowloris). A request head must be complete within `header_timeout_s` of
  the connection opening, or of its first byte on a kept-alive connection; otherwise 408
  (or a plain close when not a byte of it came) and the connection closes. uvicorn has no
  such timer: a connection that sends nothing, or a byte every few seconds, would hold a
  `limit_concurrency` slot for ever.
- **Body time** (slow POST). The whole body must arrive within `body_timeout_s` of the
  head; otherwise 408 and close. Time the gateway itself spends not reading (uvicorn pauses
  reading while the application has not taken the buffered body) does not count.
- **Idle keep-alive** is uvicorn's `timeout_keep_alive` (`http_keepalive_s`), kept as a
  deadline here too: uvicorn arms a timer after every answer and cancels it at the next
  request's first byte (two libuv timer calls and a handle per request).

The three times are deadlines on the connection, checked by one sweep per server every
quarter of the shortest timeout (at most every second), not a timer armed and cancelled per
request: a request only reads the loop's clock, and a slow or idle client is cut off at
most a quarter timeout late.
"""

from __future__ import annotations

import asyncio
from collections.abc import Set

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_431 = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: application/json\r\n"
    b"x-amzn-errortype: RequestHeaderFieldsTooLarge\r\n"
    b"connection: close\r\n"
)
_408 = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: application/json\r\n"
    b"x-amzn-errortype: RequestTimeout\r\n"
    b"connection: close\r\n"
)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that refuses request heads larger than `max_head_bytes` and cuts
    off heads and bodies that take longer than `header_timeout_s` / `body_timeout_s`."""

    max_head_bytes = 64 * 1024
    header_timeout_s = 10.0
    body_timeout_s = 60.0
    _in_head = True
    _head_bytes = 0
    _head_deadline: float | None = None
    _body_deadline: float | None = None
    _idle_deadline: float | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_deadline = self.loop.time() + self.header_timeout_s
        shortest_s = min(self.header_timeout_s, self.body_timeout_s, self.timeout_keep_alive, 4.0)
        interval_s = max(shortest_s / 4, 0.01)
        _sweep_later(self.loop, self.connections, interval_s)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._in_head or self.transport.is_closing():
            return
        self._head_bytes += len(data)
        if self._head_bytes > self.max_head_bytes:
            self._refuse(
                _431,
                b'{"__type": "RequestHeaderFieldsTooLarge", "Message": "The request head '
                b"exceeds " + str(self.max_head_bytes).encode() + b' bytes."}',
            )

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes = True, 0
        if self._head_deadline is None:
            self._head_deadline = self.loop.time() + self.header_timeout_s

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_deadline = None
        super().on_headers_complete()
        # on_message_complete follows at once for a request without a body and clears it.
        self._body_deadline = self.loop.time() + self.body_timeout_s

    def on_message_complete(self) -> None:
        self._body_deadline = None
        super().on_message_complete()

    def _unset_keepalive_if_required(self) -> None:
        self._idle_deadline = None
        super()._unset_keepalive_if_required()

    def on_response_complete(self) -> None:
        """uvicorn's, with the idle deadline in place of its keep-alive timer."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._unset_keepalive_if_required()
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self._idle_deadline = self.loop.time() + self.timeout_keep_alive

    def handle_websocket_upgrade(self) -> None:
        # The connection becomes a WebSocket: no HTTP request times apply any more.
        self._head_deadline = self._body_deadline = None
        super().handle_websocket_upgrade()

    def check_deadlines(self, now: float) -> None:
        """Cut the connection off if its head or body is late (called by the sweep)."""
        if self.transport.is_closing():
            return
        if self._head_deadline is not None and now >= self._head_deadline:
            self._head_deadline = None
            self._head_timed_out()
        elif self._body_deadline is not None and now >= self._body_deadline:
            self._body_deadline = None
            self._body_timed_out(now)
        elif self._idle_deadline is not None and now >= self._idle_deadline:
            self._idle_deadline = None
            self.timeout_keep_alive_handler()

    def _head_timed_out(self) -> None:
        if self._head_bytes == 0:
            self.transport.close()  # nothing asked, nothing to answer
            return
        self._refuse(
            _408,
            b'{"__type": "RequestTimeout", "Message": "The request head did not arrive within '
            + str(self.header_timeout_s).encode()
            + b' s."}',
        )

    def _body_timed_out(self, now: float) -> None:
        if self.flow.read_paused:
            # The gateway stopped reading (backpressure), not the client: wait on.
            self._body_deadline = now + self.body_timeout_s
            return
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()
            return
        self._refuse(
            _408,
            b'{"__type": "RequestTimeout", "Message": "The request body did not arrive within '
            + str(self.body_timeout_s).encode()
            + b' s."}',
        )

    def _refuse(self, head: bytes, body: bytes) -> None:
        """Answer `head` + `body` and close (the ASGI task, if any, sees a disconnect)."""
        self.transport.write(head + b"content-length: %d\r\n\r\n" % len(body) + body)
        self.transport.close()


# The connection sets (one per uvicorn server) that have a sweep scheduled, held so that
# their ids are not reused while listed.
_swept: dict[int, tuple[asyncio.AbstractEventLoop, Set[asyncio.Protocol]]] = {}


def _sweep_later(
    loop: asyncio.AbstractEventLoop, connections: Set[asyncio.Protocol], interval_s: float
) -> None:
    """Check every connection's deadlines each `interval_s` while the server has any."""
    key = id(connections)
    listed = _swept.get(key)
    if listed is not None and listed[0] is loop and not loop.is_closed():
        return
    _swept[key] = (loop, connections)

    def sweep() -> None:
        now = loop.time()
        for connection in list(connections):
            check = getattr(connection, "check_deadlines", None)
            if check is not None:
                check(now)
        if connections:
            loop.call_later(interval_s, sweep)
        else:
            _swept.pop(key, None)

    loop.call_later(interval_s, sweep)


def bounded_protocol(
    max_head_bytes: int, header_timeout_s: float = 10.0, body_timeout_s: float = 60.0
) -> type[asyncio.Protocol]:
    """A protocol class for `uvicorn.run(http=...)` with these limits."""
    return type(
        "BoundedHttpToolsProtocol",
        (BoundedHttpToolsProtocol,),
        {
            "max_head_bytes": max_head_bytes,
            "header_timeout_s": header_timeout_s,
            "body_timeout_s": body_timeout_s,
        },
    )
