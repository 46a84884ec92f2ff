"""One invocation of one loaded model: decode → predict → encode, as the contract answers it.

`invoke(model, body, headers, executor)` is the instance's only invoke path: the
single-model app's `/invocations` and the multi-model app's `/models/{name}/invoke` both
call it, so status codes, bodies, the CustomAttributes header and error mapping are
written once. It knows no HTTP beyond the contract's header names.

Where predictions run: the caller's one worker thread (`executor`), except that a
built-in runtime handles bodies up to its `inline_max_bytes` directly on the event
loop. Measured on 2 cores with a 69-feature, 100-tree model, a thread hop per request
costs ~30% of throughput (future + GIL handoff), while a one-row predict is ~70 µs, so
small bodies run inline; large batches and all user scripts (unknown cost) go to the
thread, which keeps /ping answering during long invocations. When inline calls take
more than `INLINE_BUDGET_S` of CPU (`INLINE_STRIKES` times), the inline limit shrinks
below that body size, so an expensive model drifts to the thread on its own. One call in
`INLINE_SAMPLE` is timed (and every call once one was slow): the thread's CPU clock is a
syscall, which py-spy found costing a tenth of a one-row request on a busy machine.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelhost.container.asgi import TEXT, Receive, Send, respond
from modelhost.container.asgi import Headers as RawHeaders
from modelhost.container.streams import StreamSignal, produce, respond_streamed
from modelhost.frameworks.streaming import StreamedBody

if TYPE_CHECKING:
    from modelhost.container.batching import Batcher
    from modelhost.container.config import InstanceConfig
    from modelhost.frameworks.base import Context, Runtime

log = logging.getLogger("modelhost.container")

INLINE_BUDGET_S = 0.002
INLINE_STRIKES = 3
# One inline call in this many is timed (reading a thread's CPU clock is a syscall, two per
# timed call; an expensive model is expensive on every call, so a sample finds it).
INLINE_SAMPLE = 8
CUSTOM_ATTRIBUTES = b"x-amzn-sagemaker-custom-attributes"


@dataclass
class Reply:
    """What an invocation answers: status, body, its content type and extra headers.

    A streamed answer (`container.streams`) has its first chunk in `body` and the chunks
    still to come in `rest`; `send_reply` sends either kind."""

    status: int
    body: bytes
    content_type: bytes
    headers: RawHeaders = field(default_factory=list)
    rest: AsyncIterator[bytes] | None = None


async def send_reply(
    send: Send, receive: Receive, reply: Reply, signal: StreamSignal = StreamSignal.BREAK
) -> None:
    """Send `reply`: whole with Content-Length, or chunked as a stream produces it
    (`signal`: how a stream failing midway says why, `streams.stream_signal`)."""
    if reply.rest is None:
        await respond(send, reply.status, reply.body, reply.content_type, reply.headers)
    else:
        await respond_streamed(
            send,
            receive,
            reply.body,
            reply.rest,
            reply.content_type,
            reply.headers,
            error_response,
            signal,
        )


class ServedModel:
    """One loaded model as the invoke path sees it.

    Holds the runtime, the directory its files are in (the script-mode context's
    `model_dir`), the body size up to which it runs on the event loop (shrinks for an
    expensive model, see the module docstring) and its batcher, if requests to it are
    merged. One per model: the single-model app has one, a multi-model app one per
    loaded model (per-model batching plugs in here).
    """

    def __init__(self, runtime: Runtime, model_dir: str, batcher: Batcher | None = None) -> None:
        from modelhost.frameworks.base import Context

        self.runtime = runtime
        self.model_dir = model_dir
        self.batcher = batcher
        self.inline_max_bytes = runtime.inline_max_bytes
        self._strikes = 0
        self._inline_calls = 0
        self._context_cls: type[Context] = Context

    def context(self, custom: str | None, headers: RawHeaders) -> Context:
        # A runtime that can batch runs no user code, so nobody reads the header dict.
        names = {} if self.runtime.can_batch else _header_dict(headers)
        return self._context_cls(self.model_dir, custom, names)

    def times_inline(self) -> bool:
        """Whether to time this inline call: the first, one in `INLINE_SAMPLE`, and every
        one while slow calls are being counted."""
        self._inline_calls += 1
        return self._strikes > 0 or self._inline_calls % INLINE_SAMPLE == 1

    def observe_inline(self, size: int, elapsed_s: float) -> None:
        """Record the CPU time of an inline call of a `size`-byte body."""
        if elapsed_s <= INLINE_BUDGET_S:
            self._strikes = 0
            return
        # Several slow calls in a row, so a garbage-collection pause (which lands on
        # whichever call allocates at the wrong moment) does not move the limit.
        self._strikes += 1
        if self._strikes < INLINE_STRIKES:
            return
        self._strikes = 0
        self.inline_max_bytes = max(0, min(self.inline_max_bytes, size - 1))
        log.warning(
            "a %d-byte invocation took %.1f ms on the event loop; bodies over %d bytes now "
            "run in the worker thread",
            size,
            elapsed_s * 1000,
            self.inline_max_bytes,
        )


def served_model(runtime: Runtime, model_dir: str, config: InstanceConfig) -> ServedModel:
    """`runtime` as the invoke path serves it, with its own batcher when the instance
    batches and the runtime can (the single-model app's one model, and each model a
    multi-model app loads: requests for the same model merge, other models' never do).

    Merged predicts run on the event loop, so only runtimes cheap enough to run inline
    batch (script mode and BYOC never do)."""
    batcher = None
    if config.batching and runtime.can_batch and runtime.inline_max_bytes > 0:
        from modelhost.container.batching import Batcher

        batcher = Batcher(runtime, config.batch_max_rows, config.batch_max_wait_s)
    return ServedModel(runtime, model_dir, batcher)


def invoke_now(model: ServedModel, body: bytes, headers: RawHeaders) -> Reply | None:
    """The answer to an invocation that runs on the spot (a small body, no batching), or
    None when it must wait (a batch or the worker thread): then call `invoke`. Lets the
    instance's HTTP server answer without creating a task (container/http_connection.py)."""
    limit = model.inline_max_bytes
    if model.batcher is not None or not limit or len(body) > limit:
        # (A model that never runs inline, script mode's, is the only one that streams:
        # its first chunk needs `invoke`'s await.)
        return None
    content_type, accept, custom = contract_headers(headers)
    try:
        context = model.context(custom, headers)
        timed = model.times_inline()
        # CPU time of this thread, not wall time: being preempted by other processes on a
        # busy machine must not count as an expensive model.
        started = time.thread_time() if timed else 0.0
        answer, media = model.runtime.handle(body, content_type, accept, context)
        if timed:
            model.observe_inline(len(body), time.thread_time() - started)
        if isinstance(answer, StreamedBody):
            raise TypeError("a runtime that runs inline answered with a stream")
    except Exception as exc:
        return failure_reply(exc)
    return _ok(answer, media, context)


def batches(model: ServedModel, body: bytes) -> bool:
    """Whether `body` joins `model`'s merged predicts (`invoke_batched` answers it)."""
    return model.batcher is not None and len(body) <= model.inline_max_bytes


def invoke_batched(
    model: ServedModel, body: bytes, headers: RawHeaders, done: Callable[[Reply], None]
) -> Reply | None:
    """An invocation that `batches`: decoded and checked now, then queued for the next
    merged predict. Returns the answer when it is known at once (the request's own
    error, or a request too large to merge, predicted alone), else None, and `done(reply)`
    is called from the event loop once the merged predict ran. No task, no future: the
    instance's HTTP server answers from `done` (container/http_connection.py)."""
    content_type, accept, _ = contract_headers(headers)
    runtime = model.runtime
    batcher = model.batcher
    assert batcher is not None
    try:
        # A runtime that batches never reads the context (no user code): none is built.
        data, media = runtime.prepare(body, content_type, accept)
        rows = runtime.batch_rows(data)
        if not batcher.accepts(rows):
            batcher.alone += 1
            return Reply(200, runtime.encode(runtime.predict(data), media), media.encode("latin-1"))
    except Exception as exc:
        return failure_reply(exc)

    def answer(prediction: Any, error: BaseException | None) -> None:
        if error is None:
            try:
                reply = Reply(200, runtime.encode(prediction, media), media.encode("latin-1"))
            except Exception as exc:
                reply = failure_reply(exc)
        else:
            reply = failure_reply(error)
        done(reply)

    batcher.submit(data, rows, answer)
    return None


async def invoke(model: ServedModel, body: bytes, headers: RawHeaders, executor: Executor) -> Reply:
    """Answer one invocation of `model` (never raises for the model's or the body's faults)."""
    reply = invoke_now(model, body, headers)
    if reply is not None:
        return reply
    content_type, accept, custom = contract_headers(headers)
    runtime = model.runtime
    try:
        if len(body) <= model.inline_max_bytes and model.batcher is not None:
            # A runtime that batches never reads the context (no user code), so no
            # Context or header dict is built for it.
            data, media = runtime.prepare(body, content_type, accept)
            rows = runtime.batch_rows(data)
            if model.batcher.accepts(rows):
                prediction = await model.batcher.predict(data, rows)
            else:
                model.batcher.alone += 1
                prediction = runtime.predict(data)
            return Reply(200, runtime.encode(prediction, media), media.encode("latin-1"))
        context = model.context(custom, headers)
        answer, media = await asyncio.get_running_loop().run_in_executor(
            executor, runtime.handle, body, content_type, accept, context
        )
        rest = None
        if isinstance(answer, StreamedBody):
            # The first chunk before the head, so a handler failing at once still gets
            # its status (see container.streams).
            rest = produce(answer, executor)
            answer = await anext(rest, b"")
    except Exception as exc:
        return failure_reply(exc)
    return _ok(answer, media, context, rest)


def _ok(
    answer: bytes, media: str, context: Context, rest: AsyncIterator[bytes] | None = None
) -> Reply:
    extra = []
    if context.response_custom_attributes is not None:
        extra.append((CUSTOM_ATTRIBUTES, context.response_custom_attributes.encode("latin-1")))
    return Reply(200, answer, media.encode("latin-1"), extra, rest)


def failure_reply(exc: BaseException) -> Reply:
    """The contract's answer to an invocation that raised `exc`, logged by severity."""
    status, message = error_response(exc)
    if status >= 500:
        log.error("invocation failed (%d): %s", status, message.splitlines()[0])
    else:
        log.debug("invocation rejected (%d): %s", status, message)
    return Reply(status, message.encode(), TEXT)


def contract_headers(headers: RawHeaders) -> tuple[str | None, str | None, str | None]:
    """Content-Type, Accept and CustomAttributes of a request (None when absent)."""
    content_type = accept = custom = None
    for key, value in headers:
        if key == b"content-type":
            content_type = value.decode("latin-1")
        elif key == b"accept":
            accept = value.decode("latin-1")
        elif key == CUSTOM_ATTRIBUTES:
            custom = value.decode("latin-1")
    return content_type, accept, custom


def _header_dict(headers: RawHeaders) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in headers}


def is_ours(exc: BaseException) -> bool:
    """Whether `exc` is one of modelhost's own request or model errors (not user code's)."""
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
    if is_ours(exc):
        return status, str(getattr(exc, "message", exc))
    message = getattr(exc, "message", None)
    if isinstance(exc, MemoryError):
        message = out_of_memory_message()
    elif not isinstance(message, str) or not message:
        message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    trace = "".join(traceback.format_exception(exc)).rstrip()
    return status, f"{message}\n{trace}"


def out_of_memory_message() -> str:
    """A MemoryError, named as what it is: the model went over the instance's memory
    (its limit is a serverless variant's MemorySizeInMB, fleet/limits.py)."""
    import resource

    limit, _hard = resource.getrlimit(resource.RLIMIT_DATA)
    within = "" if limit == resource.RLIM_INFINITY else f" of {limit // (1024 * 1024)} MiB"
    return (
        f"MemoryError: the model ran out of memory: it needs more than the instance's "
        f"memory limit{within} (for a serverless endpoint, raise MemorySizeInMB)"
    )


def load_failure_reason(exc: BaseException) -> str:
    """The FailureReason text for a failed load: our message, or the exception named."""
    if is_ours(exc):
        return str(getattr(exc, "message", exc))
    return f"Model failed to load: {type(exc).__name__}: {exc}"
