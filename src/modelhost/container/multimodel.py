"""The multi-model container API (SageMaker's MME contract) with a memory-bounded LRU cache.

| call | answer |
|---|---|
| `POST /models` `{"model_name", "url"}` | 200 loaded; 409 already loaded; 507 does not fit |
| `GET /models?limit=&next_page_token=` | `{"models": [{"modelName", "modelUrl"}], ...}` |
| `GET /models/{name}` | `{"modelName", "modelUrl"}`; 404 when not loaded |
| `GET /modelhost/stats` | batching counters and compiled-tier states (instance_stats.py) |
| `DELETE /models/{name}` | unloads (after its in-flight requests); 404 when not loaded |
| `POST /models/{name}/invoke` | as `/invocations`; 404 when not loaded |

`url` is the artifact's location (`s3://...`, `file://...`, a path to an archive) or a
local directory holding the unpacked artifact; the instance fetches it itself
(`container.model_source`). `{name}` is percent-decoded, so a model name may contain `/`.
With `"expect_use": true` (our addition; the gateway sends it when it retries a request
whose model was unloaded under it) the load, or the 409 for a model loaded or loading
already, also promises one more invocation: the model is kept until it arrives (at most
the cache's `fresh_s`), so the retry cannot lose it again.

Memory: a model is charged the bytes of its files on disk (a deterministic stand-in for
its in-memory size; tree models and ONNX graphs are about that size once loaded). When a
load would exceed the budget, the least recently used idle models are unloaded first;
models with requests in flight, still loading, or just loaded and not yet used (see
`model_cache`) are never unloaded, and a load that can only fit once such a model is
free waits for it (up to `ROOM_WAIT_S`). 507 is answered
only when the model alone is larger than the budget, or the wait runs out. Concurrent
`POST /models` for one name share one load: the first gets 200, the others 409.

Answers carry a few extra fields beside SageMaker's (`memoryBytes`, `loadingTimeUs`,
`evicted` with each unload's `unloadingTimeUs`, and `downloadingTimeUs` when the load
downloaded or unpacked the artifact rather than finding it in the cache) so the gateway
learns what this instance holds and reports ModelDownloadingTime, ModelLoadingTime and
ModelUnloadingTime without another call. A location that cannot be fetched answers 400
with `"artifactError": true` (SageMaker's "Failed to download model data").

Invocations go through the instance's one invoke path (`container.invoke`), with
per-model adaptive batching: each loaded model has its own `Batcher` (when the instance
batches and the runtime can), so requests for the same model that arrive together are
predicted in one call, each keeping its own error, as in a single-model instance. On the
instance's own HTTP server, invocations of loaded models skip the ASGI app and are merged
per model at the end of each loop turn without a task (`offer`, container/multimodel_fast.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

from modelhost.container.asgi import JSON, Receive, Scope, Send, read_body, respond
from modelhost.container.compile_tier import CompileTier, TierConfig
from modelhost.container.config import InstanceConfig
from modelhost.container.instance_stats import BatchTotals, batching, multimodel_stats
from modelhost.container.invoke import (
    ServedModel,
    invoke,
    load_failure_reason,
    send_reply,
    served_model,
)
from modelhost.container.loading import (
    default_budget_bytes,
    directory_bytes,
    load_runtime,
    runtime_options,
    warm_up,
)
from modelhost.container.model_cache import Admission, ModelCache
from modelhost.container.model_source import LoadRefused, ModelSource, parse_load_request
from modelhost.container.multimodel_fast import TickInvoker
from modelhost.container.streams import stream_signal

if TYPE_CHECKING:
    from pathlib import Path

    from modelhost.container.http_connection import HttpConnection, Request
    from modelhost.frameworks.base import RuntimeOptions

__all__ = ["LoadRefused", "LoadedModel", "MultiModelHost", "directory_bytes"]

log = logging.getLogger("modelhost.container")

ROOM_WAIT_S = 60.0  # SageMaker's invocation deadline
LIST_LIMIT = 100  # MMS's default and maximum page size
Evicted = list[dict[str, Any]]  # {"modelName", "unloadingTimeUs"} per model unloaded


@dataclass
class LoadedModel:
    """One loaded model: its name, the location it was loaded from, and how it is served."""

    name: str
    url: str
    served: ServedModel
    memory_bytes: int


class MultiModelHost:
    """Serves the `/models` API of one instance; see the module docstring."""

    def __init__(self, config: InstanceConfig, executor: ThreadPoolExecutor) -> None:
        self.config = config
        self.cache = ModelCache(config.model_cache_bytes or default_budget_bytes())
        self.models: dict[str, LoadedModel] = {}
        self._executor = executor
        self._loads: dict[str, asyncio.Task[dict[str, Any]]] = {}
        self._room = asyncio.Condition()
        self._waiting = 0
        self._notifying: set[asyncio.Task[None]] = set()
        self._options: RuntimeOptions | None = None
        self.source = ModelSource(config)
        self.tier = CompileTier(TierConfig.of(config))
        self.retired = BatchTotals()  # unloaded models' batching counters (stats)
        self.tick = TickInvoker(
            self.models,
            self.cache,
            self._wake_waiters,
            config.batch_max_rows,
            config.batch_max_wait_s,
        )

    def warm_up(self) -> None:
        """Import the framework the image names, so the first load does not pay for it."""
        warm_up(self.config.runtime)

    def offer(self, connection: HttpConnection, request: Request) -> bool:
        """`POST /models/{name}/invoke` of a loaded model, answered without the ASGI path
        (container/multimodel_fast.py); False: serve it through `__call__`."""
        return self.tick.offer(connection, request)

    # --- ASGI ---------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw: bytes = scope.get("raw_path") or scope["path"].encode()
        parts = [unquote(p.decode("latin-1")) for p in raw.split(b"?", 1)[0].split(b"/")[2:]]
        method = scope["method"]
        if len(parts) == 2 and parts[1] == "invoke" and method == "POST":
            await self.invoke(parts[0], scope, receive, send)
            return
        try:
            if not parts or parts == [""]:
                if method == "POST":
                    status, doc = await self.load(await read_body(receive) or b"")
                elif method == "GET":
                    status, doc = 200, self.list(scope.get("query_string", b""))
                else:
                    status, doc = 405, _error(405, "Use GET or POST /models")
            elif len(parts) == 1 and method in ("GET", "DELETE"):
                status, doc = await (self.unload if method == "DELETE" else self.describe)(parts[0])
            else:
                status, doc = 404, _error(404, f"No route {method} {scope['path']}")
        except LoadRefused as exc:
            status, doc = exc.status, {**_error(exc.status, exc.message), **exc.extra}
        await respond(send, status, json.dumps(doc).encode(), JSON)

    # --- the API ------------------------------------------------------------------------

    async def load(self, body: bytes) -> tuple[int, dict[str, Any]]:
        """`POST /models`: load once, however many ask at the same time."""
        load = parse_load_request(body)  # raises LoadRefused (400)
        name, url, expect_use = load.name, load.url, load.expect_use
        pending = self._loads.get(name)
        if pending is not None and name not in self.models:
            await asyncio.shield(pending)  # its failure is ours too
        if name in self.models:
            if expect_use:
                self.cache.expect_use(name, asyncio.get_running_loop().time())
            return 409, _error(409, f"Model {name} is already loaded")
        task = asyncio.ensure_future(self._admit_and_load(name, url))
        self._loads[name] = task
        try:
            return 200, await asyncio.shield(task)
        finally:
            if self._loads.get(name) is task:
                del self._loads[name]

    def list(self, query: bytes) -> dict[str, Any]:
        """`GET /models`, sorted by name, paged as MMS pages (the token is an offset)."""
        params = parse_qs(query.decode("latin-1"))
        try:
            limit = min(max(int(params.get("limit", [LIST_LIMIT])[0]), 1), LIST_LIMIT)
            start = max(int(params.get("next_page_token", ["0"])[0]), 0)
        except ValueError:
            raise LoadRefused(400, "limit and next_page_token must be integers") from None
        names = sorted(self.models)
        page = [self._describe(self.models[n]) for n in names[start : start + limit]]
        out: dict[str, Any] = {
            "models": page,
            "budgetBytes": self.cache.budget_bytes,
            "usedBytes": self.cache.used_bytes,
        }
        if start + limit < len(names):
            out["nextPageToken"] = str(start + limit)
        return out

    async def describe(self, name: str) -> tuple[int, dict[str, Any]]:
        model = self.models.get(name)
        if model is None:
            return 404, _error(404, f"Model {name} is not loaded")
        return 200, self._describe(model)

    async def unload(self, name: str) -> tuple[int, dict[str, Any]]:
        """`DELETE /models/{name}`: waits for the model's in-flight requests, then unloads."""
        if name not in self.models:
            return 404, _error(404, f"Model {name} is not loaded")
        deadline = asyncio.get_running_loop().time() + ROOM_WAIT_S
        while (entry := self.cache.get(name)) is not None and entry.in_flight:
            await self._wait_for_room(deadline, f"Model {name} is still serving requests")
        if name not in self.models:
            return 404, _error(404, f"Model {name} is not loaded")
        unloading_us = self._unload(name)
        return 200, {"status": f"Model {name} unloaded", "unloadingTimeUs": unloading_us}

    async def invoke(self, name: str, scope: Scope, receive: Receive, send: Send) -> None:
        """`POST /models/{name}/invoke`: `/invocations` for one loaded model."""
        body = await read_body(receive)
        if body is None:
            return
        model = self.models.get(name)
        if model is None:
            doc = _error(404, f"Model {name} is not loaded")
            await respond(send, 404, json.dumps(doc).encode(), JSON)
            return
        self.cache.acquire(name)  # pinned: never evicted while this runs (or streams)
        try:
            reply = await invoke(model.served, body, scope["headers"], self._executor)
            await send_reply(send, receive, reply, stream_signal(scope))
        finally:
            self.cache.release(name)
            self._wake_waiters()

    def stats(self) -> dict[str, Any]:
        loaded = list(self.models.values())
        states = {m.name: self.tier.state(m.name) for m in loaded}
        return multimodel_stats([m.served.batcher for m in loaded], states, self.retired)

    def close(self) -> None:
        self.tick.close()
        for name in list(self.models):
            # Compiled libraries stay mapped: a request may still run as the process ends.
            self._unload(name, release=False)

    # --- loading and unloading ----------------------------------------------------------

    async def _admit_and_load(self, name: str, url: str) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        # Not in the worker thread: a download must not hold up other models' predictions.
        path, size, fetched = await asyncio.to_thread(self._fetch, name, url)
        downloading_us = (time.perf_counter() - started) * 1e6
        try:
            evicted = await self._make_room(name, size)
        except BaseException:
            self.source.release(name)  # not loaded: its node cache entry may go
            raise
        self.cache.reserve(name, size)
        started = time.perf_counter()
        try:
            runtime = await loop.run_in_executor(
                self._executor, load_runtime, self.config.runtime, path, self._runtime_options()
            )
        except Exception as exc:
            self.cache.remove(name)
            self.source.release(name)
            await self._notify()
            log.error("model %s failed to load: %s", name, load_failure_reason(exc))
            raise LoadRefused(400, load_failure_reason(exc)) from exc
        loading_us = (time.perf_counter() - started) * 1e6
        # Its own batcher: requests for this model that arrive together share a predict.
        served = served_model(runtime, str(path), self.config)
        self.models[name] = LoadedModel(name, url, served, size)
        self.cache.loaded(name, loop.time())
        self.tier.offer(runtime, name)
        log.info("model %s loaded (%d bytes, %.1f ms)", name, size, loading_us / 1000)
        answer = {
            "status": f"Model {name} loaded",
            "modelName": name,
            "modelUrl": url,
            "memoryBytes": size,
            "loadingTimeUs": loading_us,
            "evicted": evicted,
        }
        if fetched:  # only a real download or unpack is a ModelDownloadingTime
            answer["downloadingTimeUs"] = downloading_us
        return answer

    def _fetch(self, name: str, url: str) -> tuple[Path, int, bool]:
        path, fetched = self.source.fetch(name, url)
        return path, directory_bytes(path), fetched

    async def _make_room(self, name: str, size: int) -> Evicted:
        """Evict what the cache's plan says once `size` bytes may be admitted; the evicted."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ROOM_WAIT_S
        while True:
            plan = self.cache.plan(size, loop.time())
            if plan.admission is Admission.TOO_LARGE:
                raise LoadRefused(
                    507,
                    f"Model {name} needs {size} bytes, more than this instance's whole model "
                    f"cache ({self.cache.budget_bytes} bytes); raise MH_INSTANCE_MODEL_CACHE_BYTES "
                    "or use an instance type with more memory",
                    # So the gateway knows unloading other models would not help.
                    memoryBytes=size,
                    budgetBytes=self.cache.budget_bytes,
                )
            if plan.admission is Admission.FITS:
                break
            await self._wait_for_room(
                deadline, f"No room for model {name}: every loaded model is busy"
            )
        return [
            {"modelName": victim, "unloadingTimeUs": self._unload(victim)} for victim in plan.evict
        ]

    def _runtime_options(self) -> RuntimeOptions:
        if self._options is None:
            self._options = runtime_options(self.config)
        return self._options

    def _unload(self, name: str, release: bool = True) -> float:
        """Unload now (the caller made sure nothing uses it); returns microseconds taken.
        `release`: also dlclose its libraries (a compiled artifact's, its compiled form) and
        drop its compiled form's lease (compile_tier.py)."""
        started = time.perf_counter()
        model = self.models.pop(name)
        self.cache.remove(name)
        self.source.release(name)
        self.tier.forget(name)
        self.retired.retire(model.served.batcher)
        if model.served.batcher is not None:
            model.served.batcher.close()  # nothing is queued: it had no request in flight
        try:
            if release:
                model.served.runtime.release_native()
            model.served.runtime.unload()
        except Exception:
            log.exception("unloading model %s failed", name)
        if release:
            self.tier.release(model.served.runtime)
        del model  # the last reference: the framework frees the model's memory now
        unloading_us = (time.perf_counter() - started) * 1e6
        log.info("model %s unloaded (%.1f ms)", name, unloading_us / 1000)
        self._wake_waiters()
        return unloading_us

    async def _wait_for_room(self, deadline: float, message: str) -> None:
        """Wait until a request finishes or a model leaves (or a fresh model expires)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now >= deadline:
            raise LoadRefused(507, message)
        # A fresh model becomes evictable when it expires, with nobody to notify: wake then.
        fresh = self.cache.fresh_until_s()
        timeout = deadline - now if fresh is None else min(deadline - now, max(fresh - now, 1e-3))
        self._waiting += 1
        try:
            async with self._room:
                await asyncio.wait_for(self._room.wait(), timeout)
        except TimeoutError:
            if loop.time() >= deadline:
                raise LoadRefused(507, message) from None
        finally:
            self._waiting -= 1

    def _wake_waiters(self) -> None:
        """Let loads waiting for room look again (a request finished or a model left)."""
        if self._waiting:
            task = asyncio.ensure_future(self._notify())
            self._notifying.add(task)
            task.add_done_callback(self._notifying.discard)

    async def _notify(self) -> None:
        async with self._room:
            self._room.notify_all()

    def _describe(self, model: LoadedModel) -> dict[str, Any]:
        entry = self.cache.get(model.name)
        return {
            "modelName": model.name,
            "modelUrl": model.url,
            "memoryBytes": model.memory_bytes,
            "inFlight": entry.in_flight if entry is not None else 0,
            # modelhost's own: the compiled tier's state and the model's batching counters.
            "compiledTier": self.tier.state(model.name),
            "batching": batching(model.served.batcher),
        }


def _error(status: int, message: str) -> dict[str, Any]:
    # MMS's error body shape, which SageMaker's own containers answer with.
    return {"code": status, "message": message}
