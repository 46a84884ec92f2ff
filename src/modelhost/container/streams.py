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
(docs/protocols.md). On a server without trailers (uvicorn) the response is left
unfinished, which the server turns into a closed connection without the last chunk: the
gateway reports that as a `ModelStreamError` too, without the cause. A client that goes
away stops the generator between chunks (it is closed, so its `finally` blocks run).
"""

from __future__ import annotations

import asyncio
import logging
import time
from asyncio import FIRST_COMPLETED
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Executor
from typing import Any

from modelhost.container import stream_error
from modelhost.container.asgi import Headers, Message, Receive, Send
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
    trailers: bool = False,
) -> None:
    """A 200 answer whose body is `first`, then each chunk of `rest` as it comes; a
    failure of `rest` is logged as `describe` words it (status, message). With `trailers`
    (the server sends ASGI's `http.response.trailers`) the answer declares the
    `container.stream_error` trailer and a failure ends it with that trailer; without, a
    failure leaves it unfinished (the server breaks the connection off)."""
    headers = [(b"content-type", content_type), *extra]
    start: Message = {"type": "http.response.start", "status": 200, "headers": headers}
    if trailers:
        headers.append((b"trailer", STREAM_ERROR))
        start["trailers"] = True
    await send(start)
    if first:
        await send({"type": "http.response.body", "body": first, "more_body": True})
    gone = asyncio.ensure_future(_disconnected(receive))
    failed: Headers = []
    try:
        async for chunk in rest:
            if gone.done():
                return  # the client went away: stop producing
            if chunk:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except Exception as exc:
        status, message = describe(exc)
        log.error("the model's stream failed after it started (%d): %s", status, message)
        if not trailers:
            return  # unfinished: the server closes the connection, the gateway sees a break
        failed.append((STREAM_ERROR, stream_error.encode(message)))
    finally:
        gone.cancel()
        await _aclose(rest)
    await send({"type": "http.response.body", "body": b"", "more_body": False})
    if trailers:
        await send({"type": "http.response.trailers", "headers": failed, "more_trailers": False})


async def _aclose(rest: AsyncIterator[bytes]) -> None:
    aclose = getattr(rest, "aclose", None)
    if callable(aclose):
        await aclose()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
