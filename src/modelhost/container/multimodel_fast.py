"""Invocations of loaded models in a multi-model instance, answered without a task.

Why: with many hot models and fewer requests in flight than models (`bench/multimodel.py`
hot51: 51 models, 32 connections), nearly every request is predicted alone, so what a
request costs around its predict decides the throughput. Through the instance's ASGI app
each one built a scope, a task, `receive`/`send` messages and a future in its model's
batcher, and its model's batcher armed a callback of its own.

How: the instance's HTTP server (container/http_connection.py) offers every
`POST /models/{name}/invoke` to `TickInvoker.offer` inside the parser's callback. For a
model that is loaded and a body small enough to run on the event loop:

- batching off: answered on the spot (`invoke_now`), as the single-model `/invocations` is;
- batching on: the body is decoded and validated at once (a bad one is answered at once,
  alone), its rows are queued with the model pinned in the cache, and at the next turn of
  the event loop (one callback for every model; after `max_wait_s` when that is set) each
  model's queued rows are predicted in one call of at most `max_rows` rows, and every
  answer is written. Requests for different models never share a call. A merged call that
  fails is repeated request by request, so a failure lands only on the request causing it.

Anything else (a model that is not loaded: the ASGI path answers 404 and the gateway loads
it; a large body: the worker thread; a query string) takes the ASGI path as before, where
the answers are written once (container/multimodel.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote

from modelhost.container.asgi import TEXT
from modelhost.container.invoke import (
    Reply,
    ServedModel,
    contract_headers,
    failure_reply,
    invoke_now,
)

if TYPE_CHECKING:
    from modelhost.container.batching import Batcher
    from modelhost.container.http_connection import HttpConnection, Request
    from modelhost.container.model_cache import ModelCache
    from modelhost.frameworks.base import Runtime

log = logging.getLogger("modelhost.container")

_PREFIX = b"/models/"
_SUFFIX = b"/invoke"


class Loaded(Protocol):
    """A loaded model as the multi-model host keeps it (`multimodel.LoadedModel`)."""

    served: ServedModel


class _Item:
    """One queued request: where its answer goes and its validated rows."""

    __slots__ = ("batcher", "connection", "data", "keep_alive", "media", "name", "rows", "runtime")

    def __init__(
        self,
        connection: HttpConnection,
        keep_alive: bool,
        name: str,
        runtime: Runtime,
        data: Any,
        rows: int,
        media: str,
        batcher: Batcher,
    ) -> None:
        self.connection = connection
        self.keep_alive = keep_alive
        self.name = name
        self.runtime = runtime
        self.data = data
        self.rows = rows
        self.media = media
        self.batcher = batcher  # its model's: the per-model counters (GET /modelhost/stats)


class TickInvoker:
    """Answers the invocations of loaded models of one multi-model instance (see the module
    docstring). `models` and `cache` are the host's; `released` is called once requests
    finished (loads waiting for room look again)."""

    def __init__(
        self,
        models: Mapping[str, Loaded],
        cache: ModelCache,
        released: Callable[[], None],
        max_rows: int,
        max_wait_s: float,
    ) -> None:
        self.models = models
        self.cache = cache
        self.released = released
        self.max_rows = max_rows
        self.max_wait_s = max_wait_s
        self._queue: list[_Item] = []
        self._handle: asyncio.Handle | None = None
        # Counters for tests and the docs' measurements (cheap ints, no metrics lib).
        self.calls = 0
        self.predicted_rows = 0
        self.largest = 0

    def offer(self, connection: HttpConnection, request: Request) -> bool:
        """Answer `request` now or at the end of this loop turn (True), or leave it to the
        ASGI path (False)."""
        name = model_name(request.url) if request.method == b"POST" else None
        loaded = self.models.get(name) if name is not None else None
        if loaded is None or name is None:
            return False
        served = loaded.served
        body = request.body
        if not body or len(body) > served.inline_max_bytes:
            return False  # empty (the ASGI path names it) or for the worker thread
        batcher = served.batcher
        if batcher is None:
            reply = self._now(name, served, request)
            if reply is None:
                return False
            connection.reply(reply, request.keep_alive)
            return True
        runtime = served.runtime
        content_type, accept, _custom = contract_headers(request.headers)
        try:
            data, media = runtime.prepare(body, content_type, accept)
            rows = runtime.batch_rows(data)
        except Exception as exc:  # a bad body fails alone, at once
            connection.reply(failure_reply(exc), request.keep_alive)
            return True
        self.cache.acquire(name)  # pinned: never evicted before its answer
        if not batcher.accepts(rows):  # more rows than a merged call takes: alone, now
            batcher.alone += 1
            try:
                reply = _answer(runtime, _predict_one(runtime, data), media)
            finally:
                self._release(name)
            connection.reply(reply, request.keep_alive)
            return True
        connection.hold()  # requests behind it on this connection wait for its answer
        item = _Item(connection, request.keep_alive, name, runtime, data, rows, media, batcher)
        self._queue.append(item)
        if self._handle is None:
            loop = connection.loop
            if self.max_wait_s > 0:
                self._handle = loop.call_later(self.max_wait_s, self.flush)
            else:
                self._handle = loop.call_soon(self.flush)
        return True

    def flush(self) -> None:
        """Predict what is queued, model by model, and write every answer."""
        self._handle = None
        items, self._queue = self._queue, []
        if not items:
            return
        try:
            if len(items) == 1:
                self._settle(items)
                return
            groups: dict[str, list[_Item]] = {}
            for item in items:
                group = groups.get(item.name)
                if group is None:
                    groups[item.name] = [item]
                else:
                    group.append(item)
            for group in groups.values():
                for chunk in _chunks(group, self.max_rows):
                    self._settle(chunk)
        finally:
            self.released()

    def close(self) -> None:
        """Answer what is queued with 503 (shutdown) so no connection waits forever."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        items, self._queue = self._queue, []
        for item in items:
            self.cache.release(item.name)
            _deliver(item, Reply(503, b"The instance is shutting down", TEXT))

    # --- internals ----------------------------------------------------------------------

    def _now(self, name: str, served: ServedModel, request: Request) -> Reply | None:
        self.cache.acquire(name)
        try:
            return invoke_now(served, request.body, request.headers)
        finally:
            self._release(name)

    def _release(self, name: str) -> None:
        self.cache.release(name)
        self.released()

    def _settle(self, chunk: list[_Item]) -> None:
        """One predict for `chunk` (one model's requests), then every answer."""
        runtime = chunk[0].runtime
        total = 0
        for item in chunk:
            total += item.rows
        self.calls += 1
        self.predicted_rows += total
        self.largest = max(self.largest, total)
        batcher = chunk[0].batcher  # the model's own counters too (GET /modelhost/stats)
        batcher.calls += 1
        batcher.batched_rows += total
        if len(chunk) == 1:
            batcher.alone += 1
        if total > batcher.largest:
            batcher.largest = total
        if len(chunk) == 1:
            outs = [_predict_one(runtime, chunk[0].data)]
        else:
            outs = _predict_merged(runtime, chunk, total)
        for item, out in zip(chunk, outs, strict=True):
            self.cache.release(item.name)
            _deliver(item, _answer(runtime, out, item.media))


def model_name(url: bytes) -> str | None:
    """The `{name}` of `/models/{name}/invoke` (percent-decoded; a name with `/` in it
    arrives as `%2F`), or None for any other URL (and for one with a query string)."""
    if not url.startswith(_PREFIX) or not url.endswith(_SUFFIX) or b"?" in url:
        return None
    raw = url[len(_PREFIX) : -len(_SUFFIX)]
    if not raw or b"/" in raw:
        return None
    text = raw.decode("latin-1")
    return unquote(text) if b"%" in raw else text


def _chunks(group: list[_Item], max_rows: int) -> list[list[_Item]]:
    """`group` cut in order into runs of at most `max_rows` rows (each item fits alone)."""
    chunks: list[list[_Item]] = [[]]
    rows = 0
    for item in group:
        if rows + item.rows > max_rows and chunks[-1]:
            chunks.append([])
            rows = 0
        chunks[-1].append(item)
        rows += item.rows
    return chunks


def _predict_one(runtime: Runtime, data: Any) -> Any:
    """The prediction, or the exception it raised (returned, to be answered alone)."""
    try:
        return runtime.predict(data)
    except Exception as exc:
        return _Failed(exc)


def _predict_merged(runtime: Runtime, chunk: list[_Item], total: int) -> list[Any]:
    import numpy as np  # not at import: the instance answers /ping before numpy loads

    try:
        out = runtime.predict(np.concatenate([item.data for item in chunk]))
        if len(out) != total:
            raise ValueError(f"predict returned {len(out)} rows for {total}")
    except Exception as exc:
        # Isolate the failure: each request on its own gets its own answer or error.
        log.debug("merged predict of %d requests failed (%s); each alone", len(chunk), exc)
        return [_predict_one(runtime, item.data) for item in chunk]
    outs = []
    start = 0
    for item in chunk:
        end = start + item.rows
        outs.append(out[start:end])
        start = end
    return outs


class _Failed:
    """A prediction that raised (kept apart from predictions, which may be anything)."""

    __slots__ = ("exc",)

    def __init__(self, exc: Exception) -> None:
        self.exc = exc


def _answer(runtime: Runtime, out: Any, media: str) -> Reply:
    if isinstance(out, _Failed):
        return failure_reply(out.exc)
    try:
        return Reply(200, runtime.encode(out, media), media.encode("latin-1"))
    except Exception as exc:
        return failure_reply(exc)


def _deliver(item: _Item, reply: Reply) -> None:
    connection = item.connection
    try:
        connection.reply(reply, item.keep_alive)
    except Exception:  # one connection's trouble must not keep the others' answers
        log.exception("writing a multi-model answer failed")
        connection.abort()
    finally:
        connection.release()
