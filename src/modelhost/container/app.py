"""The container contract as a raw ASGI callable: /ping, /invocations, /execution-parameters.

No framework routing: three fixed paths, compared as strings, are the whole router, and
the hot path (one-row CSV against XGBoost) is a header scan, a runtime call and two
`send`s (the invoke path itself is `container.invoke`, shared with the multi-model API).
Nothing here imports numpy or a framework at module level; the runtime is imported and
loaded in the worker thread after the socket listens, so /ping answers 503 within
milliseconds of start and the model load never blocks it.

A multi-model instance is this app with a `/models` API mounted (`models`, composed in
`container.server`): this module never imports the multi-model one.
"""

from __future__ import annotations

import asyncio
import enum
import gc
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

from modelhost.container.asgi import (
    JSON,
    TEXT,
    Receive,
    Scope,
    Send,
    read_body,
    respond,
)
from modelhost.container.compile_tier import CompileTier, TierConfig
from modelhost.container.config import InstanceConfig
from modelhost.container.instance_stats import STATS_PATH, publish_batching, single_model_stats
from modelhost.container.invoke import (
    CUSTOM_ATTRIBUTES,
    INLINE_BUDGET_S,
    INLINE_STRIKES,
    ServedModel,
    error_response,
    invoke,
    is_ours,
    load_failure_reason,
    send_reply,
    served_model,
)
from modelhost.container.loading import load_runtime, runtime_options
from modelhost.container.streams import stream_signal

if TYPE_CHECKING:
    from modelhost.container.health import SharedHealth
    from modelhost.frameworks.base import Runtime

__all__ = [
    "CUSTOM_ATTRIBUTES",
    "INLINE_BUDGET_S",
    "INLINE_STRIKES",
    "InstanceApp",
    "ModelState",
    "ModelsAPI",
    "error_response",
    "load_failure_reason",
]

log = logging.getLogger("modelhost.container")
# The compiled tier's label of a single-model instance's model (its log lines and state):
# the log's reader knows which endpoint.
MODEL_LABEL = "the model"


class ModelState(enum.Enum):
    """Lifecycle of the instance's model."""

    LOADING = "Loading"
    READY = "Healthy"
    FAILED = "Failed"


_STATE_BY_NAME = {s.value: s for s in ModelState}


class ModelsAPI(Protocol):
    """The multi-model `/models` API an instance may mount (`container.multimodel`)."""

    def warm_up(self) -> None:
        """Prepare for loads (runs in the worker thread before the instance is ready)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve `/models` and `/models/...`."""

    # (`Any`: the HTTP server's types import this module; container/multimodel_fast.py.)
    def offer(self, connection: Any, request: Any) -> bool:
        """Answer `POST /models/{name}/invoke` on the HTTP server's connection without the
        ASGI app (at once, or later through `connection.hold`/`release`), or return False."""

    def close(self) -> None:
        """Unload every model."""

    def stats(self) -> dict[str, Any]:
        """The instance's `GET /modelhost/stats` answer (container/instance_stats.py)."""


class InstanceApp:
    """ASGI app serving one model under the SageMaker container contract, or with `models`,
    the multi-model `/models` API instead (models load on demand)."""

    def __init__(
        self,
        config: InstanceConfig,
        health: SharedHealth | None = None,
        models: ModelsAPI | None = None,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        self.config = config
        # With several workers, /ping answers for all of them (see container.workers).
        self.health = health
        self.state = ModelState.LOADING
        self.reason: str | None = None
        self.model: ServedModel | None = None
        self.models = models
        self._executor = executor or ThreadPoolExecutor(1, thread_name_prefix="predict")
        self.tier = CompileTier(TierConfig.of(config))
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        self._execution_parameters = json.dumps(
            {
                "MaxConcurrentTransforms": cpus or 1,
                "BatchStrategy": "MULTI_RECORD",
                "MaxPayloadInMB": 6,
            }
        ).encode()

    @property
    def executor(self) -> ThreadPoolExecutor:
        """The worker thread that loads the model and runs what may not block the loop."""
        return self._executor

    @property
    def runtime(self) -> Runtime | None:
        """The loaded model's runtime (None while loading, after a failure, or multi-model)."""
        return self.model.runtime if self.model is not None else None

    # --- model lifecycle ----------------------------------------------------------------

    async def load(self) -> None:
        """Load the model in the worker thread; the event loop keeps serving /ping."""
        loop = asyncio.get_running_loop()
        if self.models is not None:
            # Models load on demand through POST /models; the instance is ready once its
            # framework is imported (seconds for some), so no first load pays for that.
            await loop.run_in_executor(self._executor, self.models.warm_up)
            self._set_state(ModelState.READY)
            return
        await loop.run_in_executor(self._executor, self._load)
        batcher = self.model.batcher if self.model is not None else None
        if self.health is not None and self.health.count > 1 and batcher is not None:
            publish_batching(self.health, batcher, loop)  # for the workers' summed stats

    def _load(self) -> None:
        started = time.perf_counter()
        config = self.config
        try:
            runtime = load_runtime(config.runtime, config.model_dir, runtime_options(config))
            model = served_model(runtime, str(config.model_dir), config)
        except Exception as exc:
            self.reason = load_failure_reason(exc)
            self._set_state(ModelState.FAILED)
            log.error("model failed to load: %s", self.reason, exc_info=not is_ours(exc))
            return
        self.model = model
        self.tier.offer(runtime, MODEL_LABEL)
        # The model and framework are long-lived: keep them out of every future
        # collection, which otherwise scans ~100k objects (a ~30 ms pause) now and then.
        gc.collect()
        gc.freeze()
        self._set_state(ModelState.READY)  # last: requests check only this
        log.info(
            "model loaded from %s by the %s runtime in %.2f s",
            config.model_dir,
            runtime.name,
            time.perf_counter() - started,
        )

    def _set_state(self, state: ModelState) -> None:
        self.state = state
        if self.health is not None:
            self.health.set(state.value, self.reason if state is ModelState.FAILED else None)

    def close(self) -> None:
        """Unload the model and stop the worker thread (queued work is cancelled)."""
        model = self.model
        if model is not None:
            try:
                model.runtime.unload()
            except Exception:
                log.exception("unload failed")
            if model.batcher is not None:
                model.batcher.close()
        if self.models is not None:
            self.models.close()
        self._executor.shutdown(wait=False, cancel_futures=True)

    # --- ASGI ---------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            method = scope["method"]
            if path == "/invocations":
                if method == "POST":
                    await self._invocations(scope, receive, send)
                else:
                    await respond(send, 405, b"Use POST /invocations", TEXT, [(b"allow", b"POST")])
            elif path == "/ping":
                await self._ping(send)
            elif path == "/execution-parameters":
                await respond(send, 200, self._execution_parameters, JSON)
            elif path == STATS_PATH:
                await respond(send, 200, json.dumps(self.stats()).encode(), JSON)
            elif self.models is not None and (path == "/models" or path.startswith("/models/")):
                await self.models(scope, receive, send)
            else:
                await respond(send, 404, f"No route {method} {path}".encode(), TEXT)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    def stats(self) -> dict[str, Any]:
        """`GET /modelhost/stats`: batching counters and compiled-tier state."""
        if self.models is not None:
            return self.models.stats()
        model = self.model
        return single_model_stats(
            model.batcher if model is not None else None,
            self.tier.state(MODEL_LABEL),
            self.health,
        )

    def offer(self, connection: Any, request: Any) -> bool:
        """A multi-model invocation answered without the ASGI path (`ModelsAPI.offer`)."""
        return self.models is not None and self.models.offer(connection, request)

    async def _ping(self, send: Send) -> None:
        status, body = self.ping_reply()
        await respond(send, status, body, JSON)

    def ping_reply(self) -> tuple[int, bytes]:
        """The contract's /ping answer (status, JSON body) for the whole instance."""
        state, reason = self.state, self.reason
        if self.health is not None:
            name, reason = self.health.instance_state()
            state = _STATE_BY_NAME[name]
        if state is ModelState.READY:
            return 200, b'{"status": "Healthy"}'
        if state is ModelState.LOADING:
            return 503, b'{"status": "Loading"}'
        return 500, json.dumps({"status": "Failed", "reason": reason}).encode()

    async def _invocations(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(receive)
        if body is None:
            return  # client went away
        model = self.model
        if model is None:
            if self.models is not None:
                hint = b"This is a multi-model instance: use POST /models/{name}/invoke"
                await respond(send, 400, hint, TEXT)
            elif self.state is ModelState.FAILED:
                await respond(send, 500, f"Model failed to load: {self.reason}".encode(), TEXT)
            else:
                await respond(send, 503, b"Model is still loading: retry when /ping is 200", TEXT)
            return
        reply = await invoke(model, body, scope["headers"], self._executor)
        await send_reply(send, receive, reply, stream_signal(scope))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
