"""The container contract as a raw ASGI callable: /ping, /invocations, /execution-parameters.

No framework routing: three fixed paths, compared as strings, are the whole router, and
the hot path (one-row CSV against XGBoost) is a header scan, a runtime call and two
`send`s. Nothing here imports numpy or a framework at module level; the runtime is
imported and loaded in the worker thread after the socket listens, so /ping answers
503 within milliseconds of start and the model load never blocks it.

Where predictions run: one worker thread (`ThreadPoolExecutor(1)`), except that a
built-in runtime handles bodies up to its `inline_max_bytes` directly on the event
loop. Measured on 2 cores with a 69-feature, 100-tree model, a thread hop per request
costs ~30% of throughput (future + GIL handoff), while a one-row predict is ~70 µs, so
small bodies run inline; large batches and all user scripts (unknown cost) go to the
thread, which keeps /ping answering during long invocations. When inline calls take
more than `INLINE_BUDGET_S` of CPU (`INLINE_STRIKES` times), the inline limit shrinks
below that body size, so an expensive model drifts to the thread on its own.
"""

from __future__ import annotations

import asyncio
import enum
import gc
import json
import logging
import os
import time
import traceback
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from modelhost.container.config import InstanceConfig

if TYPE_CHECKING:
    from modelhost.container.batching import Batcher
    from modelhost.container.multimodel import MultiModelHost
    from modelhost.container.workers import SharedHealth
    from modelhost.frameworks.base import Context, Runtime

log = logging.getLogger("modelhost.container")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

INLINE_BUDGET_S = 0.002
INLINE_STRIKES = 3
CUSTOM_ATTRIBUTES = b"x-amzn-sagemaker-custom-attributes"
TEXT = b"text/plain; charset=utf-8"
JSON = b"application/json"


class ModelState(enum.Enum):
    """Lifecycle of the instance's model."""

    LOADING = "Loading"
    READY = "Healthy"
    FAILED = "Failed"


_STATE_BY_NAME = {s.value: s for s in ModelState}


class InstanceApp:
    """ASGI app serving one model under the SageMaker container contract."""

    def __init__(self, config: InstanceConfig, health: SharedHealth | None = None) -> None:
        self.config = config
        # With several workers, /ping answers for all of them (see container.workers).
        self.health = health
        self.state = ModelState.LOADING
        self.reason: str | None = None
        self.runtime: Runtime | None = None
        self._context_cls: type[Context] | None = None
        self._inline_max = 0
        self._inline_strikes = 0
        self._batcher: Batcher | None = None
        # Set when SAGEMAKER_MULTI_MODEL=true: serves /models (container.multimodel).
        self.models: MultiModelHost | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        self._execution_parameters = json.dumps(
            {
                "MaxConcurrentTransforms": cpus or 1,
                "BatchStrategy": "MULTI_RECORD",
                "MaxPayloadInMB": 6,
            }
        ).encode()

    # --- model lifecycle ----------------------------------------------------------------

    async def load(self) -> None:
        """Load the model in the worker thread; the event loop keeps serving /ping."""
        if self.config.multi_model:
            from modelhost.container.multimodel import MultiModelHost

            # Models load on demand through POST /models; the instance is ready once its
            # framework is imported (seconds for some), so no first load pays for that.
            self.models = MultiModelHost(self.config, self._executor)
            await asyncio.get_running_loop().run_in_executor(self._executor, self.models.warm_up)
            self.state = ModelState.READY
            if self.health is not None:
                self.health.set("Healthy")
            return
        await asyncio.get_running_loop().run_in_executor(self._executor, self._load)

    def _load(self) -> None:
        started = time.perf_counter()
        try:
            from modelhost.frameworks.base import Context, RuntimeOptions
            from modelhost.frameworks.registry import select_runtime

            config = self.config
            options = RuntimeOptions(
                default_accept=config.default_accept,
                batch=config.batch,
                nthread=config.nthread,
                program=config.program,
                submit_dir=config.submit_dir,
                inference_output=config.inference_output,
                inference_supported=config.inference_supported,
                packages_dir=config.packages_dir,
                pip_timeout_s=config.pip_timeout_s,
                onnx_output=config.onnx_output,
            )
            runtime = select_runtime(config.runtime, config.model_dir, options)
            runtime.load(config.model_dir)
            if config.batching and runtime.can_batch and runtime.inline_max_bytes > 0:
                from modelhost.container.batching import Batcher

                # Merged predicts run on the event loop, so only runtimes cheap enough
                # to run inline batch (script mode and BYOC never do).
                self._batcher = Batcher(runtime, config.batch_max_rows, config.batch_max_wait_s)
        except Exception as exc:
            self.reason = load_failure_reason(exc)
            self.state = ModelState.FAILED
            if self.health is not None:
                self.health.set("Failed", self.reason)
            log.error("model failed to load: %s", self.reason, exc_info=not _is_ours(exc))
            return
        self.runtime = runtime
        self._context_cls = Context
        self._inline_max = runtime.inline_max_bytes
        # The model and framework are long-lived: keep them out of every future
        # collection, which otherwise scans ~100k objects (a ~30 ms pause) now and then.
        gc.collect()
        gc.freeze()
        self.state = ModelState.READY  # last: requests check only this
        if self.health is not None:
            self.health.set("Healthy")
        log.info(
            "model loaded from %s by the %s runtime in %.2f s",
            self.config.model_dir,
            runtime.name,
            time.perf_counter() - started,
        )

    def close(self) -> None:
        """Unload the model and stop the worker thread (queued work is cancelled)."""
        if self.runtime is not None:
            try:
                self.runtime.unload()
            except Exception:
                log.exception("unload failed")
        if self._batcher is not None:
            self._batcher.close()
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
                    await _respond(send, 405, b"Use POST /invocations", TEXT, [(b"allow", b"POST")])
            elif path == "/ping":
                await self._ping(send)
            elif path == "/execution-parameters":
                await _respond(send, 200, self._execution_parameters, JSON)
            elif self.models is not None and (path == "/models" or path.startswith("/models/")):
                await self.models(scope, receive, send)
            else:
                await _respond(send, 404, f"No route {method} {path}".encode(), TEXT)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _ping(self, send: Send) -> None:
        state, reason = self.state, self.reason
        if self.health is not None:
            name, reason = self.health.instance_state()
            state = _STATE_BY_NAME[name]
        if state is ModelState.READY:
            await _respond(send, 200, b'{"status": "Healthy"}', JSON)
        elif state is ModelState.LOADING:
            await _respond(send, 503, b'{"status": "Loading"}', JSON)
        else:
            body = json.dumps({"status": "Failed", "reason": reason}).encode()
            await _respond(send, 500, body, JSON)

    async def _invocations(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        if body is None:
            return  # client went away
        runtime = self.runtime
        if runtime is None or self._context_cls is None:
            if self.models is not None:
                hint = b"This is a multi-model instance: use POST /models/{name}/invoke"
                await _respond(send, 400, hint, TEXT)
            elif self.state is ModelState.FAILED:
                await _respond(send, 500, f"Model failed to load: {self.reason}".encode(), TEXT)
            else:
                await _respond(send, 503, b"Model is still loading: retry when /ping is 200", TEXT)
            return
        content_type, accept, custom = _contract_headers(scope)
        batcher = self._batcher
        try:
            if batcher is not None and len(body) <= self._inline_max:
                # A runtime that batches never reads the context (no user code), so no
                # Context or header dict is built for it.
                data, media = runtime.prepare(body, content_type, accept)
                rows = runtime.batch_rows(data)
                if batcher.accepts(rows):
                    prediction = await batcher.predict(data, rows)
                else:
                    prediction = runtime.predict(data)
                await _respond(send, 200, runtime.encode(prediction, media), media.encode())
                return
            context = self._context_cls(str(self.config.model_dir), custom, _header_dict(scope))
            if len(body) <= self._inline_max:
                # CPU time of this thread, not wall time: being preempted by other
                # processes on a busy machine must not count as an expensive model.
                started = time.thread_time()
                answer, media = runtime.handle(body, content_type, accept, context)
                elapsed = time.thread_time() - started
                if elapsed > INLINE_BUDGET_S:
                    self._slow_inline(len(body), elapsed)
                else:
                    self._inline_strikes = 0
            else:
                answer, media = await asyncio.get_running_loop().run_in_executor(
                    self._executor, runtime.handle, body, content_type, accept, context
                )
        except Exception as exc:
            status, message = error_response(exc)
            if status >= 500:
                log.error("invocation failed (%d): %s", status, message.splitlines()[0])
            else:
                log.debug("invocation rejected (%d): %s", status, message)
            await _respond(send, status, message.encode(), TEXT)
            return
        extra = []
        if context.response_custom_attributes is not None:
            extra.append((CUSTOM_ATTRIBUTES, context.response_custom_attributes.encode("latin-1")))
        await _respond(send, 200, answer, media.encode("latin-1"), extra)

    def _slow_inline(self, size: int, elapsed: float) -> None:
        # Several slow calls in a row, so a garbage-collection pause (which lands on
        # whichever call allocates at the wrong moment) does not move the limit.
        self._inline_strikes += 1
        if self._inline_strikes < INLINE_STRIKES:
            return
        self._inline_strikes = 0
        self._inline_max = max(0, min(self._inline_max, size - 1))
        log.warning(
            "a %d-byte invocation took %.1f ms on the event loop; bodies over %d bytes now "
            "run in the worker thread",
            size,
            elapsed * 1000,
            self._inline_max,
        )

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _contract_headers(scope: Scope) -> tuple[str | None, str | None, str | None]:
    """Content-Type, Accept and CustomAttributes of a request (None when absent)."""
    content_type = accept = custom = None
    for key, value in scope["headers"]:
        if key == b"content-type":
            content_type = value.decode("latin-1")
        elif key == b"accept":
            accept = value.decode("latin-1")
        elif key == CUSTOM_ATTRIBUTES:
            custom = value.decode("latin-1")
    return content_type, accept, custom


def _header_dict(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


async def _read_body(receive: Receive) -> bytes | None:
    message = await receive()
    if message["type"] == "http.disconnect":
        return None
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    chunks = [body]
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _is_ours(exc: BaseException) -> bool:
    from modelhost.codecs.errors import CodecError
    from modelhost.frameworks.errors import InferenceError

    return isinstance(exc, CodecError | InferenceError)


def error_response(exc: BaseException) -> tuple[int, str]:
    """HTTP status and text body for an invocation error.

    Our own errors carry `status_code` and a one-line `message`. A user script's
    exception with an int `status_code` (the toolkit's `BaseInferenceToolkitError`)
    keeps its status; anything else is 500. User errors get the traceback appended, as
    the inference toolkit does, since that is what the script's author needs.
    """
    status = getattr(exc, "status_code", None)
    if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
        status = 500
    if _is_ours(exc):
        return status, str(getattr(exc, "message", exc))
    message = getattr(exc, "message", None)
    if not isinstance(message, str) or not message:
        message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    trace = "".join(traceback.format_exception(exc)).rstrip()
    return status, f"{message}\n{trace}"


def load_failure_reason(exc: BaseException) -> str:
    """The FailureReason text for a failed load: our message, or the exception named."""
    if _is_ours(exc):
        return str(getattr(exc, "message", exc))
    return f"Model failed to load: {type(exc).__name__}: {exc}"
