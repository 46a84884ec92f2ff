"""The multi-model container API (SageMaker's MME contract) with a memory-bounded LRU cache.

| call | answer |
|---|---|
| `POST /models` `{"model_name", "url"}` | 200 loaded; 409 already loaded; 507 does not fit |
| `GET /models?limit=&next_page_token=` | `{"models": [{"modelName", "modelUrl"}], ...}` |
| `GET /models/{name}` | `{"modelName", "modelUrl"}`; 404 when not loaded |
| `DELETE /models/{name}` | unloads (after its in-flight requests); 404 when not loaded |
| `POST /models/{name}/invoke` | as `/invocations`; 404 when not loaded |

`url` is a local directory holding the unpacked artifact (the gateway downloads and
unpacks into its artifact cache, as SageMaker's host agent does onto the instance volume).
`{name}` is percent-decoded, so a model name may contain `/`.

Memory: a model is charged the bytes of its files on disk (a deterministic stand-in for
its in-memory size; tree models and ONNX graphs are about that size once loaded). When a
load would exceed the budget, the least recently used idle models are unloaded first;
models with requests in flight, still loading, or just loaded and not yet used (see
`model_cache`) are never unloaded, and a load that can only fit once such a model is
free waits for it (up to `ROOM_WAIT_S`). 507 is answered
only when the model alone is larger than the budget, or the wait runs out. Concurrent
`POST /models` for one name share one load: the first gets 200, the others 409.

Answers carry a few extra fields beside SageMaker's (`memoryBytes`, `loadingTimeUs`,
`evicted` with each unload's `unloadingTimeUs`) so the gateway learns what this instance
holds and reports ModelLoadingTime and ModelUnloadingTime without another call.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

from modelhost.container.app import (
    CUSTOM_ATTRIBUTES,
    JSON,
    TEXT,
    Receive,
    Scope,
    Send,
    _contract_headers,
    _header_dict,
    _read_body,
    _respond,
    error_response,
    load_failure_reason,
)
from modelhost.container.config import InstanceConfig
from modelhost.container.model_cache import Admission, ModelCache

if TYPE_CHECKING:
    from modelhost.frameworks.base import Runtime

log = logging.getLogger("modelhost.container")

# The library each runtime imports when it loads a model.
_FRAMEWORK_MODULES = {
    "xgboost": "xgboost",
    "sklearn": "sklearn",
    "lightgbm": "lightgbm",
    "onnx": "onnxruntime",
    "pytorch": "torch",
    "mlflow": "mlflow",
}
ROOM_WAIT_S = 60.0  # SageMaker's invocation deadline
LIST_LIMIT = 100  # MMS's default and maximum page size


class LoadRefused(Exception):
    """A load cannot happen; `status` is the HTTP answer (400, 404, 507)."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra  # more fields for the JSON answer


@dataclass
class LoadedModel:
    name: str
    url: str
    runtime: Runtime
    memory_bytes: int


def default_budget_bytes() -> int:
    """Half of this machine's memory: the rest is the framework, the server and the OS."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):
        return 2 * 1024**3


def directory_bytes(path: Path) -> int:
    """Bytes of every regular file under `path` (the model's charge against the budget)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            if not os.path.islink(full):
                total += os.path.getsize(full)
    return max(total, 1)


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
        self._options: Any = None

    def warm_up(self) -> None:
        """Import the framework the image names (not `auto`: that depends on each model),
        so the first load does not pay seconds for the import."""
        name = self.config.runtime
        if name == "auto":
            return
        from modelhost.frameworks.registry import runtime_class

        try:
            runtime_class(name)
            if name in _FRAMEWORK_MODULES:
                importlib.import_module(_FRAMEWORK_MODULES[name])
        except Exception:
            log.exception("importing the %s runtime failed", name)

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
                    status, doc = await self.load(await _read_body(receive) or b"")
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
        await _respond(send, status, json.dumps(doc).encode(), JSON)

    # --- the API ------------------------------------------------------------------------

    async def load(self, body: bytes) -> tuple[int, dict[str, Any]]:
        """`POST /models`: load once, however many ask at the same time."""
        try:
            doc = json.loads(body or b"{}")
            name, url = doc["model_name"], doc["url"]
            if not isinstance(name, str) or not name or not isinstance(url, str) or not url:
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise LoadRefused(
                400, 'The body must be JSON {"model_name": "<name>", "url": "<directory>"}'
            ) from None
        if name in self.models:
            return 409, _error(409, f"Model {name} is already loaded")
        pending = self._loads.get(name)
        if pending is not None:
            await asyncio.shield(pending)  # its failure is ours too
            return 409, _error(409, f"Model {name} is already loaded")
        task = asyncio.ensure_future(self._admit_and_load(name, url))
        self._loads[name] = task
        try:
            return 200, await asyncio.shield(task)
        finally:
            self._loads.pop(name, None)

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
        body = await _read_body(receive)
        if body is None:
            return
        model = self.models.get(name)
        if model is None:
            await _respond(
                send, 404, json.dumps(_error(404, f"Model {name} is not loaded")).encode(), JSON
            )
            return
        content_type, accept, custom = _contract_headers(scope)
        from modelhost.frameworks.base import Context

        runtime = model.runtime
        context = Context(model.url, custom, _header_dict(scope) if not runtime.can_batch else {})
        self.cache.acquire(name)  # pinned: never evicted while this runs
        try:
            if runtime.can_batch and len(body) <= runtime.inline_max_bytes:
                # No user code reads the context: the short path of `handle`.
                data, media = runtime.prepare(body, content_type, accept)
                answer = runtime.encode(runtime.predict(data), media)
            elif len(body) <= runtime.inline_max_bytes:
                answer, media = runtime.handle(body, content_type, accept, context)
            else:
                answer, media = await asyncio.get_running_loop().run_in_executor(
                    self._executor, runtime.handle, body, content_type, accept, context
                )
        except Exception as exc:
            status, message = error_response(exc)
            await _respond(send, status, message.encode(), TEXT)
            return
        finally:
            self.cache.release(name)
            self._wake_waiters()
        extra = []
        if context.response_custom_attributes is not None:
            extra.append((CUSTOM_ATTRIBUTES, context.response_custom_attributes.encode("latin-1")))
        await _respond(send, 200, answer, media.encode("latin-1"), extra)

    def close(self) -> None:
        for name in list(self.models):
            self._unload(name)

    # --- loading and unloading ----------------------------------------------------------

    async def _admit_and_load(self, name: str, url: str) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        path = Path(url)
        if not path.is_dir():
            raise LoadRefused(404, f"Model {name}: {url} is not a directory on this instance")
        size = await loop.run_in_executor(self._executor, directory_bytes, path)
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
        evicted = [
            {"modelName": victim, "unloadingTimeUs": self._unload(victim)} for victim in plan.evict
        ]
        self.cache.reserve(name, size)
        started = time.perf_counter()
        try:
            runtime = await loop.run_in_executor(self._executor, self._load_runtime, path)
        except Exception as exc:
            self.cache.remove(name)
            await self._notify()
            log.error("model %s failed to load: %s", name, load_failure_reason(exc))
            raise LoadRefused(400, load_failure_reason(exc)) from exc
        loading_us = (time.perf_counter() - started) * 1e6
        self.models[name] = LoadedModel(name, url, runtime, size)
        self.cache.loaded(name, loop.time())
        log.info("model %s loaded (%d bytes, %.1f ms)", name, size, loading_us / 1000)
        return {
            "status": f"Model {name} loaded",
            "modelName": name,
            "modelUrl": url,
            "memoryBytes": size,
            "loadingTimeUs": loading_us,
            "evicted": evicted,
        }

    def _load_runtime(self, path: Path) -> Runtime:
        from modelhost.frameworks.registry import select_runtime

        runtime = select_runtime(self.config.runtime, path, self._runtime_options())
        runtime.load(path)
        return runtime

    def _runtime_options(self) -> Any:
        if self._options is None:
            from modelhost.frameworks.base import RuntimeOptions

            c = self.config
            self._options = RuntimeOptions(
                default_accept=c.default_accept,
                batch=c.batch,
                nthread=c.nthread,
                program=c.program,
                submit_dir=c.submit_dir,
                inference_output=c.inference_output,
                inference_supported=c.inference_supported,
                packages_dir=c.packages_dir,
                pip_timeout_s=c.pip_timeout_s,
                onnx_output=c.onnx_output,
            )
        return self._options

    def _unload(self, name: str) -> float:
        """Unload now (the caller made sure nothing uses it); returns microseconds taken."""
        started = time.perf_counter()
        model = self.models.pop(name)
        self.cache.remove(name)
        try:
            model.runtime.unload()
        except Exception:
            log.exception("unloading model %s failed", name)
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
        }


def _error(status: int, message: str) -> dict[str, Any]:
    # MMS's error body shape, which SageMaker's own containers answer with.
    return {"code": status, "message": message}
