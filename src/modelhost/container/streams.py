"""Streamed answers on the instance: a model's chunks as a chunked HTTP response.

When a runtime answers with a `StreamedBody` (script mode's generators,
`frameworks.streaming`), the invoke path pulls the first chunk before anything is sent, so
a handler that fails at once (bad input) still gets an ordinary 4xx/5xx answer. Then the
response starts without Content-Length (the ASGI server writes `Transfer-Encoding:
chunked`) and every further chunk is one `http.response.body` message with `more_body`,
sent as soon as it is produced.

A synchronous iterator's `next()` is user code of unknown cost (a token generator blocks on
its model), so it runs in the instance's worker thread, like a whole prediction, in slices
that hand each item to the event loop as it comes (see SLICE_S); an async iterator runs on
the event loop. A handler that fails after the answer started cannot
change the status: its error is logged and, on the instance's own server, the answer ends
with the `x-modelhost-stream-error` trailer carrying the error's text
(container/stream_error.py), which the gateway sends on as the stream's `ModelStreamError`
(docs/protocols.md). A server without trailers (uvicorn) frames the answer instead when the
gateway asked for frames (container/stream_frames.py), and ends a failed one with an
`ERROR` frame; asked by anyone else, it leaves the response unfinished, which the server
turns into a closed connection without the last chunk: the gateway reports that as a
`ModelStreamError` too, without the cause. `StreamSignal` names the three ways. A client
that goes away stops the generator between chunks (it is closed, so its `finally` blocks
run).
"""

from __future__ import annotations

import asyncio
import logging
import time
from asyncio import FIRST_COMPLETED
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Executor
from enum import Enum
from typing import Any

from modelhost.container import stream_error, stream_frames
from modelhost.container.asgi import Headers, Message, Receive, Scope, Send, sends_trailers
from modelhost.container.stream_error import STREAM_ERROR
from modelhost.frameworks.streaming import StreamedBody

log = logging.getLogger("modelhost.container")

_DONE = object()

# A synchronous generator runs in slices of the worker thread: one thread hop per item
# cost ~300 µs a token on a loaded 2-core machine (bench/streaming.py), so a slice pulls
# items for up to SLICE_S, each handed to the event loop at once, and then gives the thread
# back to other requests; at most MAX_AHEAD items wait unsent (a slow client holds no more).
SLICE_S = 0.005
MAX_AHEAD = 64


class StreamSignal(Enum):
    """How a streamed answer that fails after it started says so (module docstring)."""

    TRAILER = "trailer"  # the error trailer (the instance's own server)
    FRAMES = "frames"  # an ERROR frame (a server without trailers; the gateway asked)
    BREAK = "break"  # the connection breaks off, without the cause


def stream_signal(scope: Scope) -> StreamSignal:
    """The way the server serving `scope`, and its client, can tell a failure mid-stream."""
    if sends_trailers(scope):
        return StreamSignal.TRAILER
    if any(name == stream_frames.FRAMES for name, _ in scope.get("headers") or ()):
        return StreamSignal.FRAMES
    return StreamSignal.BREAK


class _Failed:
    """The generator raised: the exception, in the order of its items."""

    __slots__ = ("exc",)

    def __init__(self, exc: Exception) -> None:
        self.exc = exc


class _SyncPump:
    """A synchronous iterator's items, produced in worker-thread slices (see SLICE_S)."""

    def __init__(self, chunks: Iterator[Any], executor: Executor) -> None:
        self.chunks = chunks
        self.executor = executor
        self.loop = asyncio.get_running_loop()
        self.ready: deque[Any] = deque()  # appended by the thread, taken by the loop
        self.arrived = asyncio.Event()
        self.running: asyncio.Future[bool] | None = None  # the slice in the thread

    def _slice(self) -> bool:
        """In the worker thread: produce for up to SLICE_S; True once the iterator ended."""
        deadline = time.monotonic() + SLICE_S
        while len(self.ready) < MAX_AHEAD:
            try:
                item = next(self.chunks, _DONE)
            except Exception as exc:
                item = _Failed(exc)
            if item is _DONE:
                return True
            self.ready.append(item)
            self.loop.call_soon_threadsafe(self.arrived.set)
            if isinstance(item, _Failed):
                return True
            if time.monotonic() >= deadline:
                break
        return False

    async def items(self) -> AsyncIterator[Any]:
        ended = False
        while True:
            if self.ready:
                item = self.ready.popleft()
                if isinstance(item, _Failed):
                    raise item.exc
                yield item
            elif self.running is not None and self.running.done():
                ended, self.running = self.running.result(), None
            elif self.running is None:
                if ended:
                    return
                self.running = self.loop.run_in_executor(self.executor, self._slice)
            else:
                self.arrived.clear()
                if not self.ready:  # an item may have come in just before the clear
                    waiter: asyncio.Future[Any] = asyncio.ensure_future(self.arrived.wait())
                    either: set[asyncio.Future[Any]] = {self.running, waiter}
                    await asyncio.wait(either, return_when=FIRST_COMPLETED)
                    waiter.cancel()

    async def settle(self) -> None:
        """Wait for the slice in the thread, so the generator can be closed."""
        if self.running is not None:
            await asyncio.wait({self.running})


async def produce(body: StreamedBody, executor: Executor) -> AsyncIterator[bytes]:
    """Each chunk of `body` as bytes, as it is produced (see the module docstring)."""
    chunks = body.chunks
    pump = None
    try:
        if isinstance(chunks, Iterator):
            pump = _SyncPump(chunks, executor)
            async for item in pump.items():
                yield body.chunk(item)
        else:
            async for item in chunks:
                yield body.chunk(item)
    finally:
        if pump is not None:
            await pump.settle()
        await _close(chunks, executor)


async def _close(chunks: Iterator[Any] | AsyncIterator[Any], executor: Executor) -> None:
    """Close a generator left unfinished (a client gone, a bad chunk), so its cleanup runs."""
    try:
        if isinstance(chunks, Iterator):
            close = getattr(chunks, "close", None)
            if callable(close):
                await asyncio.get_running_loop().run_in_executor(executor, close)
        else:
            aclose = getattr(chunks, "aclose", None)
            if callable(aclose):
                await aclose()
    except Exception:
        log.exception("closing the model's stream failed")


async def respond_streamed(
    send: Send,
    receive: Receive,
    first: bytes,
    rest: AsyncIterator[bytes],
    content_type: bytes,
    extra: Headers,
    describe: Callable[[BaseException], tuple[int, str]],
    signal: StreamSignal = StreamSignal.BREAK,
) -> None:
    """A 200 answer whose body is `first`, then each chunk of `rest` as it comes; a
    failure of `rest` is logged as `describe` words it (status, message) and told as
    `signal` says: TRAILER declares the `container.stream_error` trailer and ends a failed
    answer with it (the server sends ASGI's `http.response.trailers`); FRAMES sends every
    chunk as a frame and a failure as an ERROR frame (container/stream_frames.py); BREAK
    leaves a failed answer unfinished (the server breaks the connection off)."""
    trailers, framed = signal is StreamSignal.TRAILER, signal is StreamSignal.FRAMES
    headers = [(b"content-type", content_type), *extra]
    start: Message = {"type": "http.response.start", "status": 200, "headers": headers}
    if trailers:
        headers.append((b"trailer", STREAM_ERROR))
        start["trailers"] = True
    elif framed:
        headers.append((stream_frames.FRAMES, b"1"))
    await send(start)
    if first:
        await _body(send, first, framed)
    gone = asyncio.ensure_future(_disconnected(receive))
    failed: Headers = []
    try:
        async for chunk in rest:
            if gone.done():
                return  # the client went away: stop producing
            if chunk:
                await _body(send, chunk, framed)
    except Exception as exc:
        status, message = describe(exc)
        log.error("the model's stream failed after it started (%d): %s", status, message)
        if signal is StreamSignal.BREAK:
            return  # unfinished: the server closes the connection, the gateway sees a break
        if framed:
            text = message.strip()[: stream_error.MAX_MESSAGE_CHARS].encode("utf-8", "replace")
            await _body(send, text, framed, stream_frames.ERROR)
        else:
            failed.append((STREAM_ERROR, stream_error.encode(message)))
    finally:
        gone.cancel()
        await _aclose(rest)
    await send({"type": "http.response.body", "body": b"", "more_body": False})
    if trailers:
        await send({"type": "http.response.trailers", "headers": failed, "more_trailers": False})


async def _body(send: Send, data: bytes, framed: bool, kind: int = stream_frames.DATA) -> None:
    if framed:
        data = stream_frames.frame(kind, data)
    await send({"type": "http.response.body", "body": data, "more_body": True})


async def _aclose(rest: AsyncIterator[bytes]) -> None:
    aclose = getattr(rest, "aclose", None)
    if callable(aclose):
        await aclose()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
