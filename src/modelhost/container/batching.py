"""Adaptive batching: concurrent requests to the model merged into one predict call.

Why: a one-row XGBoost `inplace_predict` is almost all fixed per-call cost (~70–115 µs
for 1 row, each extra row ~0.6 µs), so under concurrency one call on 32 stacked rows
does the work of 32 calls for the price of ~1.3.

How (on the event loop, no thread): each request is decoded and validated alone
(`Runtime.prepare`), so a body that fails to parse, names a bad Accept or has the wrong
feature count fails with its own status and never joins a batch. Valid rows are queued;
the first queued request schedules a flush — at the next turn of the event loop when
`max_wait_s` is 0, which takes exactly the requests whose bytes arrived while the
previous predict ran (no added latency when idle, bigger batches under load), or after
`max_wait_s` otherwise. Reaching `max_rows` flushes at once. The flush stacks the rows,
predicts once, and hands each request its slice: `submit` calls the request's callback
(the instance's HTTP server answers from it, with no task or future per request),
`predict` resolves the request's future. If the merged call fails, every request is
predicted alone so that the failure lands only on the request that causes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from modelhost.frameworks.base import Runtime

log = logging.getLogger("modelhost.container")


Done = Callable[[Any, BaseException | None], None]
"""A request's callback: (its rows' prediction, None) or (None, the error)."""


class _Item:
    __slots__ = ("data", "done", "rows")

    def __init__(self, data: Any, rows: int, done: Done) -> None:
        self.data = data
        self.rows = rows
        self.done = done


class Batcher:
    """Merges `predict` calls of one runtime; one per instance process."""

    def __init__(self, runtime: Runtime, max_rows: int, max_wait_s: float) -> None:
        self.runtime = runtime
        self.max_rows = max_rows
        self.max_wait_s = max_wait_s
        self._pending: list[_Item] = []
        self._rows = 0
        self._timer: asyncio.Handle | None = None
        # Counters for `GET /modelhost/stats` (container/instance_stats.py), tests and the
        # docs' measurements: plain ints, no lock (one event loop writes them). The
        # multi-model fast path counts its merged predicts here too (multimodel_fast.py).
        self.calls = 0  # predict calls of queued requests (one request or several merged)
        self.batched_rows = 0  # rows of those calls
        self.alone = 0  # requests predicted on their own (alone in the queue, too many rows)
        self.largest = 0

    def accepts(self, rows: int) -> bool:
        """True when a request of `rows` rows can be merged (else predict it alone)."""
        return 0 < rows <= self.max_rows

    async def predict(self, data: Any, rows: int) -> Any:
        """The prediction for `data` (rows already validated), computed in a merged call."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.submit(data, rows, partial(_resolve, future))
        return await future

    def submit(self, data: Any, rows: int, done: Done) -> None:
        """Queue `data` (rows already validated); `done` is called once, from the event
        loop, with its prediction or its error (possibly at once, when this fills a batch)."""
        if self._rows + rows > self.max_rows:
            self._flush()  # the new rows would overflow: send what is queued first
        self._pending.append(_Item(data, rows, done))
        self._rows += rows
        if self._rows >= self.max_rows:
            self._flush()
        elif self._timer is None:
            loop = asyncio.get_running_loop()
            if self.max_wait_s > 0:
                self._timer = loop.call_later(self.max_wait_s, self._flush)
            else:
                self._timer = loop.call_soon(self._flush)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        items, self._pending, self._rows = self._pending, [], 0
        if not items:
            return
        self.calls += 1
        total = sum(item.rows for item in items)
        self.batched_rows += total
        self.largest = max(self.largest, total)
        if len(items) == 1:
            self.alone += 1
            _settle(items[0], self.runtime)
            return
        try:
            merged = np.concatenate([item.data for item in items])
            out = self.runtime.predict(merged)
            if len(out) != total:
                raise ValueError(f"predict returned {len(out)} rows for {total}")
        except Exception as exc:
            # Isolate the failure: each request on its own gets its own answer or error.
            log.debug(
                "merged predict of %d requests failed (%s); predicting each alone", len(items), exc
            )
            self.alone += len(items)
            for item in items:
                _settle(item, self.runtime)
            return
        start = 0
        for item in items:
            end = start + item.rows
            _call(item.done, out[start:end], None)
            start = end

    def close(self) -> None:
        """Fail queued requests (shutdown) so no task waits forever."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        items, self._pending, self._rows = self._pending, [], 0
        for item in items:
            _call(item.done, None, RuntimeError("instance is shutting down"))


def _settle(item: _Item, runtime: Runtime) -> None:
    try:
        prediction = runtime.predict(item.data)
    except Exception as exc:
        _call(item.done, None, exc)
        return
    _call(item.done, prediction, None)


def _call(done: Done, prediction: Any, error: BaseException | None) -> None:
    # One request's callback failing must not keep the others of its batch unanswered.
    try:
        done(prediction, error)
    except Exception:
        log.exception("answering a batched request failed")


def _resolve(future: asyncio.Future[Any], prediction: Any, error: BaseException | None) -> None:
    if future.done():  # a cancelled request (client gone) is skipped
        return
    if error is None:
        future.set_result(prediction)
    else:
        future.set_exception(error)
