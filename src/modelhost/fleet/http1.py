"""A lean keep-alive HTTP/1.1 client for the gateway → instance hop.

Why not aiohttp here: profiling the gateway at 32 connections (py-spy, docs/performance.md)
put ~40% of its CPU in aiohttp's client (request/response objects, timeout contexts,
stream readers, header multidicts), for a hop that is always one small POST to an
instance with a handful of known headers. This client is an `asyncio.Protocol` feeding
httptools' response parser (the C parser uvicorn uses) and a LIFO pool of idle
connections per address: one `transport.write` per request, one future per response, and one
sweep per event loop for the timeouts of every request in flight (no timer per request).
An address is a TCP (host, port) or, for built-in runtimes on this machine, a Unix
domain socket's path (routing.table.Address): same bytes on the wire, but the kernel
skips the TCP/IP stack on both sides (see docs/performance.md for what it saves).

It still speaks plain HTTP/1.1, so the container contract is unchanged and a user's own
server (BYOC) is called exactly as before: Content-Length or chunked responses, or a
body delimited by the server closing the connection; `Connection: close` honoured. A
streamed answer read whole whose instance ended it with the error trailer
(container/stream_error.py) is answered as the 500 it would have been, quoting the error.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httptools

from modelhost.container.stream_error import STREAM_ERROR
from modelhost.container.stream_error import decode as decode_stream_error
from modelhost.fleet.http1_parse import InstanceDisconnected, InstanceUnreachable, ResponseProtocol
from modelhost.routing.table import Address, TcpAddress

LOOPBACK = "127.0.0.1"

IDLE_TIMEOUT_S = 60.0
"""Idle connections older than this are closed instead of reused (the instance keeps
them 75 s, so the gateway is always the side that gives up first)."""

SWEEP_MAX_S = 0.5
"""Longest time between two checks of the requests' deadlines; a request's timeout fires
at most an eighth of it, and never more than this, late."""


class _Connection(ResponseProtocol):
    """One keep-alive connection; at most one request in flight."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, dict[bytes, bytes], bytes]] | None = None
        self.closed = False
        self.idle_since = 0.0
        self.deadline = 0.0  # loop time by which the answer must be whole
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: dict[bytes, bytes] = {}
        self.chunks: list[bytes] = []
        self.headers_done = False
        self.keep_alive = True

    # asyncio.Protocol (connection_made, data_received: ResponseProtocol)
    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            if self.headers_done and self.close_delimited():
                # A close-delimited body (HTTP/1.0 style): the close ends the message.
                self.keep_alive = False
                self.on_message_complete()
                return
            if self.headers_done:
                self._fail(InstanceDisconnected("the instance broke off its answer", answered=True))
                return
            self._fail(InstanceDisconnected("the instance closed the connection"))

    # httptools callbacks (on_header: ResponseProtocol)
    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        waiter = self.waiter
        chunks = self.chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        result = (self.status, self.headers, body)
        if STREAM_ERROR in self.headers:  # (httptools adds trailer fields to the headers)
            result = _stream_failed(self.headers)
        self.keep_alive = self.keep_alive and self.parser.should_keep_alive()
        if waiter is not None and not waiter.done():
            waiter.set_result(result)

    def _fail(self, exc: BaseException) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    def expire(self) -> None:
        self._fail(TimeoutError())
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


def _stream_failed(headers: dict[bytes, bytes]) -> tuple[int, dict[bytes, bytes], bytes]:
    """A streamed answer that its instance ended with the error trailer (the model failed
    after the answer started, container/stream_error.py), read whole: the 500 answer the
    same failure before the first chunk would have been, quoting the error."""
    message = decode_stream_error(headers.pop(STREAM_ERROR))
    body = f"The model broke off its answer midway: {message}".encode()
    return 500, {b"content-type": b"text/plain; charset=utf-8"}, body


class _Deadlines:
    """The connections of one event loop with a request in flight, checked by one sweep
    (a timer per request costs a libuv timer start and stop, ~1-3 µs, on every call)."""

    __slots__ = ("busy", "handle", "interval_s", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.busy: set[_Connection] = set()
        self.handle: asyncio.TimerHandle | None = None
        self.interval_s = SWEEP_MAX_S

    def watch(self, conn: _Connection, timeout_s: float) -> None:
        conn.deadline = self.loop.time() + timeout_s
        self.busy.add(conn)
        interval_s = min(max(timeout_s / 8, 0.001), SWEEP_MAX_S)
        if self.handle is None or interval_s < self.interval_s:
            if self.handle is not None:
                self.handle.cancel()
            self.interval_s = interval_s
            self.handle = self.loop.call_later(interval_s, self.sweep)

    def sweep(self) -> None:
        now = self.loop.time()
        late = [conn for conn in self.busy if conn.deadline <= now]
        for conn in late:
            self.busy.discard(conn)
            conn.expire()
        if self.busy:
            self.handle = self.loop.call_later(self.interval_s, self.sweep)
        else:
            self.handle = None
            self.interval_s = SWEEP_MAX_S


class HTTP1Pool:
    """Idle keep-alive connections per instance address; unlimited connections per
    address (the gateway has at most one request in flight per client request)."""

    def __init__(self) -> None:
        self._idle: dict[Address, list[_Connection]] = {}
        self._host_headers: dict[Address, bytes] = {}
        self._deadlines: _Deadlines | None = None

    def _deadlines_of(self, loop: asyncio.AbstractEventLoop) -> _Deadlines:
        deadlines = self._deadlines
        if deadlines is None or deadlines.loop is not loop:
            # A pool used from another loop (tests run several) starts a fresh set; the
            # old loop's requests ended with it.
            deadlines = self._deadlines = _Deadlines(loop)
        return deadlines

    def _idle_connection(self, address: Address) -> _Connection | None:
        idle = self._idle.get(address)
        if idle:
            now = time.monotonic()
            while idle:
                conn = idle.pop()  # LIFO: the warmest connection
                if not conn.closed and now - conn.idle_since < IDLE_TIMEOUT_S:
                    return conn
                conn.close()
        return None

    async def _connect(self, address: Address) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            if isinstance(address, str):
                _, conn = await loop.create_unix_connection(_Connection, address)
            else:
                _, conn = await loop.create_connection(_Connection, address[0], address[1])
        except OSError as exc:
            raise InstanceUnreachable(f"cannot connect to {_show(address)}: {exc}") from exc
        return conn

    async def request(
        self,
        address: Address | int,
        method: bytes,
        path: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        timeout_s: float,
    ) -> tuple[int, dict[bytes, bytes], bytes]:
        """(status, lower-case headers, body) of one request to `address` (a bare port
        means this machine's loopback). Raises InstanceUnreachable, InstanceDisconnected
        or TimeoutError (the connection is then discarded)."""
        if isinstance(address, int):
            address = TcpAddress(LOOPBACK, address)
        # Not a coroutine when an idle connection is at hand (most requests).
        conn = self._idle_connection(address) or await self._connect(address)
        host = self._host_headers.get(address)
        if host is None:
            host = self._host_headers[address] = _host_header(address)
        head = [method, b" ", path, b" HTTP/1.1\r\nhost: ", host]
        head.append(b"\r\ncontent-length: %d" % len(body))
        for name, value in headers:
            head += (b"\r\n", name, b": ", value)
        head.append(b"\r\n\r\n")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Any] = loop.create_future()
        conn._reset()
        conn.waiter = waiter
        assert conn.transport is not None
        # One write (and one copy) for small requests: a header-only segment then a body
        # segment would cost a second syscall and, with delayed ACKs, latency.
        if len(body) < 65536:
            head.append(body)
            conn.transport.write(b"".join(head))
        else:
            conn.transport.write(b"".join(head))
            conn.transport.write(body)
        deadlines = self._deadlines_of(loop)
        deadlines.watch(conn, timeout_s)
        try:
            result: tuple[int, dict[bytes, bytes], bytes] = await waiter
        except BaseException:
            conn.close()  # state unknown (timeout, cancellation): never reuse it
            raise
        finally:
            deadlines.busy.discard(conn)
            conn.waiter = None
        if conn.keep_alive and not conn.closed:
            conn.idle_since = time.monotonic()
            self._idle.setdefault(address, []).append(conn)
        else:
            conn.close()
        return result

    def close(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()


def _host_header(address: Address) -> bytes:
    # HTTP/1.1 requires a Host; a socket path is no host name (curl sends "localhost").
    if isinstance(address, str):
        return b"localhost"
    return f"{address[0]}:{address[1]}".encode()


def _show(address: Address) -> str:
    if isinstance(address, str):
        return f"unix:{address}"
    return f"{address[0]}:{address[1]}"
