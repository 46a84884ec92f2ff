"""One HTTP/1.1 connection of the instance's own server: httptools straight into the invoke path.

uvicorn runs every request as an ASGI cycle: a task, a scope dict, `receive`/`send`
messages and their checks, about half of an instance's CPU per `/ping` and a good part of
a one-row invocation's. The contract's two hot paths do not need any of it, so here:

- `POST /invocations` of a loaded model calls `invoke_now` inside the parser's callback
  (no task) when the model answers on the spot (small body, no batching), or
  `invoke_batched` (no task either: the merged predict calls back with the answer) when
  it batches; otherwise the request runs as one task (`invoke`: the worker thread);
- `GET /ping` answers from the app's state in the callback;
- a multi-model `POST /models/{name}/invoke` goes to `models.offer` (multimodel_fast.py);
- everything else (`/execution-parameters`, the multi-model `/models` API, 404s and
  405s, the loading/failed answers of `/invocations`) goes to the same ASGI app as before
  (`container/asgi_bridge.py`), so those answers are written once.

Each response goes out in one `write` (head and body joined; two for bodies over
`JOIN_MAX_BYTES`, where the copy would cost more than the extra syscall). Requests of a
pipelining client are answered in order: while one runs as a task the next wait, and
reading pauses when `MAX_QUEUED` are waiting. Malformed requests get 400, heads over the
size limit 431, bodies over the size limit 413, and the connection closes; the time
limits (head, body, idle keep-alive) are checked by the server's sweep
(`container/http_server.py`), as the gateway's are (gateway/http_limits.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Protocol

import httptools

from modelhost.container.asgi import JSON, TEXT
from modelhost.container.asgi import Headers as RawHeaders
from modelhost.container.http_types import HttpLimits, Request, status_line
from modelhost.container.invoke import (
    Reply,
    ServedModel,
    batches,
    invoke,
    invoke_batched,
    invoke_now,
)

if TYPE_CHECKING:
    from modelhost.container.app import InstanceApp

log = logging.getLogger("modelhost.container")

JOIN_MAX_BYTES = 64 * 1024
MAX_QUEUED = 16  # pipelined requests held before reading pauses

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_CLOSE = b"connection: close\r\n"


class ServerSide(Protocol):
    """What a connection needs of its server (container/http_server.py)."""

    app: InstanceApp
    limits: HttpLimits
    loop: asyncio.AbstractEventLoop
    tasks: set[asyncio.Task[None]]
    date_header: bytes

    def opened(self, connection: HttpConnection) -> None:
        """A connection was made."""

    def closed(self, connection: HttpConnection) -> None:
        """A connection was lost."""

    def fallback(self, connection: HttpConnection, request: Request) -> Coroutine[Any, Any, None]:
        """Answer a request off the hot paths (the ASGI app, container/asgi_bridge.py)."""
        ...

    def stream(
        self, connection: HttpConnection, request: Request, reply: Reply
    ) -> Coroutine[Any, Any, None]:
        """Write a streamed invocation's answer (`Reply.rest`) chunked."""
        ...


class _Refused(Exception):
    """Raised in a parser callback to stop parsing; the status is on the connection."""


class HttpConnection(asyncio.Protocol):
    """The server side of one connection (TCP or Unix socket)."""

    def __init__(self, server: ServerSide, counted: bool = False) -> None:
        self.server = server
        self.app = server.app
        self.limits = server.limits
        self.loop = server.loop
        # Whether this connection counts towards this worker's share of the Unix socket.
        self.counted = counted
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.disconnected: asyncio.Future[None] = self.loop.create_future()
        self._url = b""
        self._headers: RawHeaders = []
        self._body: list[bytes] = []
        self._body_bytes = 0
        self._head_bytes = 0
        self._head_size = 0
        self._in_head = True
        self._refusal: tuple[int, bytes] | None = None
        self._queue: deque[Request] = deque()
        self._busy = False  # a request runs as a task; the queued ones wait for it
        self._paused = False
        self._last_close = False  # answer what is running, then close (shutdown)
        # One deadline, read by the server's sweep: the head's, the body's or the idle one.
        self.deadline = self.loop.time() + self.limits.header_timeout_s
        self.idle = True  # waiting for a request's first byte (the deadline is the idle one)

    # --- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.deadline = self.loop.time() + self.limits.keep_alive_s
        self.server.opened(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.disconnected.done():
            self.disconnected.set_result(None)
        self.server.closed(self)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        if self._in_head:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # No protocol upgrades here: the request was answered as plain HTTP, and what
            # follows it would be the other protocol's.
            self.finish()
            return
        except httptools.HttpParserError as exc:
            if self._refusal is not None:
                self.refuse(*self._refusal)
            else:
                self.refuse(400, f"Invalid HTTP request: {exc}".encode())
            return
        # httptools holds an unfinished head: at most one read beyond the limit is held.
        if self._in_head and self._head_bytes > self.limits.max_head_bytes:
            self.refuse(431, b"Request head too large")

    # --- httptools callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        # The head must arrive whole within header_timeout_s of its first byte.
        self.idle = False
        self.deadline = self.loop.time() + self.limits.header_timeout_s
        self._url = b""
        self._head_size = 0
        self._headers = []
        self._body = []
        self._body_bytes = 0
        self._in_head = True

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))
        # The head's size as parsed (a head that came in one read is never "unfinished").
        self._head_size += len(name) + len(value) + 4
        if self._head_size > self.limits.max_head_bytes:
            self._refusal = (431, b"Request head too large")
            raise _Refused
        if len(self._headers) > self.limits.max_headers:
            self._refusal = (431, b"Too many header fields")
            raise _Refused

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        self.deadline = self.loop.time() + self.limits.body_timeout_s
        for name, value in self._headers:
            if name == b"content-length" and value.isdigit():
                if int(value) > self.limits.max_body_bytes:
                    self._refusal = (413, b"Request body too large")
                    raise _Refused
            elif name == b"expect" and value.lower() == b"100-continue" and not self._busy:
                self.transport.write(_CONTINUE)  # type: ignore[union-attr]

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > self.limits.max_body_bytes:
            self._refusal = (413, b"Request body too large")
            raise _Refused
        self._body.append(body)

    def on_message_complete(self) -> None:
        parts = self._body
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        request = Request(
            self.parser.get_method(),
            self._url,
            self._headers,
            body,
            self.parser.should_keep_alive(),
            self.parser.get_http_version(),
        )
        self._in_head = True
        self._head_bytes = 0
        self._body = []
        self.idle = True
        self.deadline = self.loop.time() + self.limits.keep_alive_s
        if self._busy or self._queue:
            self._queue.append(request)
            if len(self._queue) >= MAX_QUEUED and not self._paused:
                self._paused = True
                self.transport.pause_reading()  # type: ignore[union-attr]
            return
        self.handle(request)

    # --- answering ----------------------------------------------------------------------

    def handle(self, request: Request) -> None:
        """Answer `request` now, or start the task that will (the hot paths first)."""
        if self.closed:
            return
        url, method = request.url, request.method
        try:
            if url == b"/invocations" and method == b"POST":
                model = self.app.model
                if model is not None:
                    if batches(model, request.body):
                        self._batched(model, request)
                        return
                    reply = invoke_now(model, request.body, request.headers)
                    if reply is None:
                        self._start(self._invoke(request, model))
                        return
                    self.reply(reply, request.keep_alive)
                    return
            elif url == b"/ping" and method == b"GET":
                status, body = self.app.ping_reply()
                self.write(status, body, JSON, None, request.keep_alive)
                return
            elif url[:8] == b"/models/" and self.app.offer(self, request):
                return  # answered, or held until a callback answers (`hold`)
        except Exception:
            log.exception("request %s %r failed", method.decode(), url)
            self.write(500, b"Internal Server Error", TEXT, None, False)
            return
        self._start(self.server.fallback(self, request))

    def _batched(self, model: ServedModel, request: Request) -> None:
        # Busy until the merged predict answers, so pipelined requests wait their turn.
        self._busy = True
        keep_alive = request.keep_alive
        reply = invoke_batched(
            model, request.body, request.headers, lambda reply: self._answered(reply, keep_alive)
        )
        if reply is not None:
            self._answered(reply, keep_alive)

    def _answered(self, reply: Reply, keep_alive: bool) -> None:
        """A batched request's answer (see `_batched`), then the next pipelined request."""
        try:
            self.reply(reply, keep_alive)
        except Exception:
            log.exception("answering a batched request failed")
            self._busy = False
            self.abort()
            return
        self.release()

    async def _invoke(self, request: Request, model: ServedModel) -> None:
        reply = await invoke(model, request.body, request.headers, self.app.executor)
        if reply.rest is not None:
            await self.server.stream(self, request, reply)
            return
        self.reply(reply, request.keep_alive)

    def _start(self, coro: Any) -> None:
        self._busy = True
        task = self.loop.create_task(coro)
        self.server.tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.server.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("request failed", exc_info=task.exception())
            self._busy = False
            self.abort()
            return
        self.release()

    def hold(self) -> None:
        """An answer a callback writes later (container/multimodel_fast.py): queue the rest."""
        self._busy = True

    def release(self) -> None:
        """The held request (or its task) finished: go on with the requests behind it."""
        self._busy = False
        while self._queue and not self._busy and not self.closed:
            self.handle(self._queue.popleft())
        if self._paused and not self._queue and not self.closed:
            self._paused = False
            self.transport.resume_reading()  # type: ignore[union-attr]
        if self._last_close and not self._busy:
            self.close()

    def reply(self, reply: Reply, keep_alive: bool) -> None:
        self.write(reply.status, reply.body, reply.content_type, reply.headers, keep_alive)

    def write(
        self,
        status: int,
        body: bytes,
        content_type: bytes,
        extra: RawHeaders | None,
        keep_alive: bool,
    ) -> None:
        """One complete response; closes the connection after it unless `keep_alive`."""
        head = [
            status_line(status),
            self.server.date_header,
            b"content-type: ",
            content_type,
            b"\r\ncontent-length: ",
            str(len(body)).encode(),
            b"\r\n",
        ]
        if extra:
            for name, value in extra:
                head += (name, b": ", value, b"\r\n")
        self.send_head(head, body, keep_alive)

    def send_head(self, head: list[bytes], body: bytes, keep_alive: bool) -> None:
        """`head` (lines, without the blank line) and `body`, then close unless `keep_alive`."""
        transport = self.transport
        if transport is None or self.closed or transport.is_closing():
            return
        keep_alive = keep_alive and not self._last_close
        if not keep_alive:
            head.append(_CLOSE)
        head.append(b"\r\n")
        if len(body) <= JOIN_MAX_BYTES:
            head.append(body)
            transport.write(b"".join(head))
        else:
            transport.write(b"".join(head))
            transport.write(body)
        if not keep_alive:
            self.close()
        elif self.idle:
            # Idle from the answer on (a long request must not count as idle time).
            self.deadline = self.loop.time() + self.limits.keep_alive_s

    def refuse(self, status: int, message: bytes) -> None:
        """Answer a request the server will not read (bad, too large, too slow) and close."""
        self._queue.clear()
        self._refusal = None
        if not self._busy:
            self.write(status, message, TEXT, None, False)
        self.close()

    # --- lifecycle ----------------------------------------------------------------------

    def quiet(self) -> bool:
        """No request in progress or waiting: closing now loses nothing."""
        return self.idle and not self._busy and not self._queue and self._head_bytes == 0

    def finish(self) -> None:
        """Shutdown: close now if quiet, else after the running request's answer."""
        self._last_close = True
        if self.quiet():
            self.close()

    def close(self) -> None:
        self._queue.clear()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        self._queue.clear()
        if self.transport is not None:
            self.transport.abort()

    def expire(self, now: float) -> None:
        """The sweep found the deadline passed: cut off a slow head or body (408), or close
        an idle kept-alive connection."""
        if self.idle:
            if not self._busy and not self._queue:
                self.close()
        elif not self._busy:
            self.refuse(408, b"Request not received in time")
