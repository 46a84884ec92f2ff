"""A streamed answer from an instance: the response's parts as they arrive.

`HTTP1Pool` (http1.py) reads a whole answer before returning it, which is right for the
one-shot invocations of the hot path. A streamed invocation (InvokeEndpointWithResponseStream)
needs each part as soon as the instance writes it, so it gets a connection of its own,
closed when the stream ends: a stream holds its connection for its whole length, and a
loopback connect is small next to a streamed generation. The same httptools parser reads it.

What one part is:

- a chunked answer (`Transfer-Encoding: chunked`): each HTTP chunk the server wrote (a
  chunk over `MAX_PART_BYTES` is cut), so a server that writes a token per chunk gives a
  part per token;
- a `Content-Length` answer: the whole body, one part (a server that does not stream);
- a body ended by the server closing the connection: whatever each read returns.

A chunked answer that ends with the `x-modelhost-stream-error` trailer (the instance's
model failed after the answer started, container/stream_error.py) ends with
`InstanceStreamFailed` carrying the error's text instead of its end; one whose connection
breaks off first ends with `InstanceDisconnected`. Other trailers are ignored. Every request
says that frames can be read (`x-modelhost-stream-frames`); an answer whose head says it is
framed (an instance on uvicorn, which cannot send trailers: container/stream_frames.py) is
unframed as it arrives, the parts being the model's bytes, and its `ERROR` frame ends it
with `InstanceStreamFailed` as the trailer would.

Parts queue up while the caller sends earlier ones; past `HIGH_WATER` queued parts the
socket stops being read until the caller catches up, so a slow client never makes the
gateway hold a whole answer.

Two limits bound the reading: each wait for the next part (`timeout_s`, TimeoutError), and,
when `deadline_s` is set, the whole answer (`StreamTimeExceeded` once the deadline has
passed while the instance is still answering; an answer the instance has finished is handed out
whole, however slowly the caller reads it).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from time import perf_counter

import httptools

from modelhost.container import stream_error
from modelhost.container.stream_frames import FRAMES, Deframer
from modelhost.fleet.http1 import LOOPBACK
from modelhost.fleet.http1_parse import (
    InstanceDisconnected,
    InstanceStreamFailed,
    InstanceUnreachable,
    ResponseProtocol,
)
from modelhost.routing.table import Address, UnixAddress

StreamAddress = Address | int  # an instance's address (TCP or Unix socket), a loopback port
MAX_PART_BYTES = 1024 * 1024
HIGH_WATER, LOW_WATER = 16, 4
_END = object()


class StreamTimeExceeded(Exception):
    """The whole answer took longer than its deadline (`StreamedAnswer.deadline_s`)."""


def part_wait_s(per_part_s: float, deadline_s: float | None, now_s: float) -> float | None:
    """How long to wait for the next part: the per-part limit, cut to what is left of the
    whole answer's time; None once that is up."""
    if deadline_s is None:
        return per_part_s
    left_s = deadline_s - now_s
    return None if left_s <= 0 else min(per_part_s, left_s)


class _Stream(ResponseProtocol):
    """One connection, one request, its answer as a queue of parts."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        loop = asyncio.get_running_loop()
        self.head: asyncio.Future[None] = loop.create_future()
        self.status = 0
        self.headers: dict[bytes, bytes] = {}
        self.trailers: dict[bytes, bytes] = {}
        self.current: list[bytes] = []
        self.size = 0
        self.parts: deque[object] = deque()
        self.wakeup: asyncio.Future[None] | None = None
        self.paused = False
        self.done = False
        self.frames: Deframer | None = None  # a framed answer's reader

    # asyncio.Protocol (connection_made, data_received: ResponseProtocol)
    def connection_lost(self, exc: Exception | None) -> None:
        if self.done:
            return
        if self.head.done() and self.close_delimited():
            self.on_message_complete()  # a close-delimited body: the close ends it
            return
        self._fail(InstanceDisconnected("the instance closed the connection mid-answer"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        # httptools reports a chunked body's trailer fields here too, after the head.
        (self.trailers if self.head.done() else self.headers)[name.lower()] = value

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if FRAMES in self.headers:
            self.frames = Deframer()
        if not self.head.done():
            self.head.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self.frames is None:
            self._add(body)
            return
        # A FrameError raised here reaches data_received as a malformed answer.
        for piece in self.frames.feed(body):
            self._add(piece)

    def _add(self, data: bytes) -> None:
        self.current.append(data)
        self.size += len(data)
        if self.size >= MAX_PART_BYTES or self.close_delimited():
            self._flush()

    def on_chunk_complete(self) -> None:
        self._flush()

    def on_message_complete(self) -> None:
        self._flush()
        self.done = True
        self._push(self._end())

    def _end(self) -> object:
        """What ends a whole answer: its end, or the failure its trailer or frame names."""
        failure = self.trailers.get(stream_error.STREAM_ERROR)
        if failure is not None:
            return InstanceStreamFailed(stream_error.decode(failure))
        if self.frames is None:
            return _END
        if self.frames.error is not None:
            return InstanceStreamFailed(self.frames.error)
        if not self.frames.at_boundary:
            return InstanceDisconnected("the instance's framed answer ended mid-frame")
        return _END

    def _flush(self) -> None:
        if self.current:
            part = self.current[0] if len(self.current) == 1 else b"".join(self.current)
            self.current, self.size = [], 0
            self._push(part)

    def _push(self, item: object) -> None:
        self.parts.append(item)
        if len(self.parts) >= HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        if self.wakeup is not None and not self.wakeup.done():
            self.wakeup.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if not self.head.done():
            self.head.set_exception(exc)
            return
        self.done = True
        self._push(exc)

    async def next_part(self, timeout_s: float) -> bytes | None:
        """The next part, None at the end; raises what broke the stream (InstanceStreamFailed,
        InstanceDisconnected), or TimeoutError when nothing arrived for `timeout_s`."""
        while not self.parts:
            self.wakeup = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self.wakeup, timeout_s)
            finally:
                self.wakeup = None
        item = self.parts.popleft()
        if self.paused and len(self.parts) <= LOW_WATER and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        if item is _END:
            self.parts.appendleft(_END)  # the end stays the end
            return None
        if isinstance(item, BaseException):
            raise item
        assert isinstance(item, bytes)
        return item

    def close(self) -> None:
        """Abort the connection; a reader waiting for a part gets the end."""
        if not self.done:
            self.done = True  # what the abort reports is not an instance failure
            self._push(_END)
        if self.transport is not None:
            self.transport.abort()


class StreamedAnswer:
    """An instance's answer whose body is read part by part; `close()` it when done.
    `deadline_s` (on `clock`, unset: none) bounds the whole answer."""

    def __init__(
        self, stream: _Stream, timeout_s: float, clock: Callable[[], float] = perf_counter
    ) -> None:
        self._stream = stream
        self.timeout_s = timeout_s
        self.deadline_s: float | None = None
        self.clock = clock
        self.status = stream.status
        self.headers = stream.headers

    async def parts(self) -> AsyncIterator[bytes]:
        """Each part as it arrives (see the module docstring)."""
        while True:
            wait_s = part_wait_s(self.timeout_s, self.deadline_s, self.clock())
            if wait_s is None and not self._stream.done:
                raise StreamTimeExceeded("the answer's time is up")
            try:
                # A finished answer's parts are queued: no wait.
                part = await self._stream.next_part(self.timeout_s if wait_s is None else wait_s)
            except TimeoutError as exc:
                if wait_s is not None and wait_s < self.timeout_s:  # the deadline cut it
                    raise StreamTimeExceeded("the answer's time is up") from exc
                raise
            if part is None:
                return
            yield part

    async def read_all(self, limit: int) -> bytes:
        """The whole body (an error answer, say), at most `limit` bytes of it."""
        chunks, size = [], 0
        async for part in self.parts():
            chunks.append(part)
            size += len(part)
            if size >= limit:
                break
        return b"".join(chunks)[:limit]

    def close(self) -> None:
        self._stream.close()


async def open_stream(
    address: StreamAddress,
    path: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    timeout_s: float,
) -> StreamedAnswer:
    """POST `body` to `path` and return once the answer's head has arrived (within
    `timeout_s`); `timeout_s` then bounds every wait for the next part. Raises
    InstanceUnreachable (never reached the instance), InstanceDisconnected or TimeoutError."""
    loop = asyncio.get_running_loop()
    try:
        if isinstance(address, UnixAddress):
            _, stream = await loop.create_unix_connection(_Stream, address.path)
            host = b"localhost"
        else:
            host_name, port = (LOOPBACK, address) if isinstance(address, int) else address
            _, stream = await loop.create_connection(_Stream, host_name, port)
            host = f"{host_name}:{port}".encode()
    except OSError as exc:
        raise InstanceUnreachable(f"cannot connect to {address}: {exc}") from exc
    head = [b"POST ", path, b" HTTP/1.1\r\nhost: ", host, b"\r\nconnection: close"]
    head += (b"\r\n", FRAMES, b": 1")  # a server without trailers may frame its answer
    head.append(b"\r\ncontent-length: %d" % len(body))
    for name, value in headers:
        head += (b"\r\n", name, b": ", value)
    head.append(b"\r\n\r\n")
    assert stream.transport is not None
    stream.transport.write(b"".join(head) + body)
    try:
        await asyncio.wait_for(asyncio.shield(stream.head), timeout_s)
    except BaseException:
        stream.close()
        raise
    return StreamedAnswer(stream, timeout_s)
