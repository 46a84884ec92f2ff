"""Streamed invocations (InvokeEndpointWithResponseStream) on the same data plane.

The variant is chosen as for `/invocations` (TargetVariant, weights, a bandit's weights).
A single-model variant's instance is asked over a connection of its own
(`fleet.http1_stream`) and its answer relayed part by part as the instance writes it: the
least-busy choice counts the stream as outstanding until it ends, and an instance that
cannot be reached is retried elsewhere as `core.Invoker` does. An error status from the
instance is read whole and raised as ModelError before anything is streamed. Once the
stream has started, a model that fails (the instance ends the answer with its error
trailer, container/stream_error.py, or on uvicorn its error frame, container/stream_frames.py)
or a connection that breaks is a ModelStreamError
(`StreamBroken`, naming the model's error, or that the instance exited). A part that does
not come within the invocation timeout, or a stream still going `max_duration_s` after its
instance was asked (the whole-stream limit, `stream_max_duration_s`), is a ModelStreamError
(`ModelInvocationTimeExceeded`, SageMaker's code for "the model failed to finish sending
the response within the timeout period"), logged; the instance's connection is closed, which
stops the model on a modelhost instance. The transport sends the error as the stream's
last event, and the invocation counts as a 5XX error in the variant's metrics.

A serverless variant streams the same way from an instance the serverless pool reserves
for the stream (starting one if none is idle) and gets back when the stream ends.
Every other kind (multi-model, multi-container) is invoked as `/invocations`
is and its answer is one part. The variant's metrics are recorded when the stream ends
(ModelLatency: until the last part); data capture keeps the whole answer only when the
endpoint captures; shadow copies are not made of streamed invocations.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from time import perf_counter
from typing import cast

from modelhost.errors import ModelStreamError, ServiceUnavailable
from modelhost.fleet.dataplane.core import MAX_ORIGINAL_MESSAGE, Headers, Retry, Sent
from modelhost.fleet.dataplane.plane import DataPlane, Invocation
from modelhost.fleet.dataplane.shadow import ShadowJob
from modelhost.fleet.http1 import InstanceDisconnected, InstanceUnreachable
from modelhost.fleet.http1_parse import InstanceStreamFailed
from modelhost.fleet.http1_stream import (
    StreamAddress,
    StreamedAnswer,
    StreamTimeExceeded,
    open_stream,
)
from modelhost.fleet.instance import Instance
from modelhost.routing.choose import pick_instance
from modelhost.routing.table import EndpointRoute, TargetMode, VariantRoute

Opener = Callable[[StreamAddress, bytes, Headers, bytes, float], Awaitable[StreamedAnswer]]
Opened = tuple[StreamedAnswer, Instance, float, Callable[[], None]]
"""An answer's head, its instance, when it was asked, and how to free the instance."""
_OCTETS = b"application/octet-stream"
EXIT_SEEN_S = 0.5  # how long a broken stream's instance is watched for its exit
_CUSTOM = b"x-amzn-sagemaker-custom-attributes"
log = logging.getLogger("modelhost.gateway")


async def _one(body: bytes) -> AsyncIterator[bytes]:
    yield body


@dataclass
class Streamed:
    """A streamed answer: its head, then `parts`. `close()` ends it early (idempotent);
    `shadow_jobs` start once the stream is sent."""

    variant: str
    content_type: bytes
    custom_attributes: bytes | None
    parts: AsyncIterator[bytes]
    close: Callable[[], None] = lambda: None
    shadow_jobs: list[ShadowJob] = field(default_factory=list)


class StreamingPlane:
    """Streamed invocations over a `DataPlane` (see the module docstring); `max_duration_s`
    bounds a whole stream (0: no bound), on `clock`."""

    def __init__(
        self,
        plane: DataPlane,
        opener: Opener = open_stream,
        max_duration_s: float = 0.0,
        clock: Callable[[], float] = perf_counter,
    ) -> None:
        self.plane = plane
        self.opener = opener
        self.max_duration_s = max_duration_s
        self.clock = clock
        self._releases: set[asyncio.Future[None]] = set()

    def _limit(self, answer: StreamedAnswer, asked: float) -> StreamedAnswer:
        """The whole-stream deadline, counted from when the instance was asked."""
        answer.clock = self.clock
        if self.max_duration_s > 0:
            answer.deadline_s = asked + self.max_duration_s
        return answer

    def _us(self, started: float) -> float:
        return (self.clock() - started) * 1e6

    async def invoke(self, route: EndpointRoute, req: Invocation) -> Streamed:
        plane = self.plane
        variant = plane.variant(route, req.target_variant)
        serverless = variant.serverless and plane.serverless is not None
        if req.target_model is not None or (
            not serverless and variant.instances[0].mode is not TargetMode.SINGLE_MODEL
        ):
            req.target_variant = variant.name  # chosen already
            jobs: list[ShadowJob] = []
            _, headers, body = await plane.invoke(route, req, jobs)
            answered = dict(headers)
            return Streamed(
                variant.name,
                answered.get(b"content-type", _OCTETS),
                answered.get(_CUSTOM),
                _one(body),
                shadow_jobs=jobs,
            )
        plane._check_kind(req, TargetMode.SINGLE_MODEL)
        opened = await (
            self._open_serverless(req, variant) if serverless else self._open(req, variant)
        )
        answer, instance, started, free = opened
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                free()
                answer.close()

        if answer.status >= 400:
            try:
                body = await answer.read_all(MAX_ORIGINAL_MESSAGE)
            finally:
                release()
            sent = Sent(answer.status, answer.headers, body, instance, self._us(started))
            plane._record(req, variant, sent)
            plane._check(req.endpoint, sent)  # raises ModelError
        inference_id = plane._observe(req, variant.name)
        relay = self._relay(route, req, variant, (answer, instance, started), inference_id, release)
        return Streamed(
            variant.name,
            answer.headers.get(b"content-type", _OCTETS),
            answer.headers.get(_CUSTOM),
            relay,
            close=release,
        )

    async def _open(self, req: Invocation, variant: VariantRoute) -> Opened:
        """The answer's head from the least busy instance, retried as `Invoker.run` does;
        the instance counts the stream as outstanding until it is freed."""
        core = self.plane.core
        tried: set[str] = set()
        retry = Retry()
        while True:
            target = pick_instance(variant.instances, core.rand, frozenset(tried))
            if target is None:
                raise core.none_reached(req.endpoint, variant.name)
            instance = cast(Instance, target)
            tried.add(instance.instance_id)
            instance.outstanding += 1
            started = self.clock()
            try:
                answer = await self.opener(
                    instance.address, b"/invocations", req.forward, req.body, core.timeout_s
                )
            except (InstanceUnreachable, InstanceDisconnected, TimeoutError) as exc:
                instance.outstanding -= 1
                core.recover(req.endpoint, variant.name, instance, exc, tried, retry)
                continue
            except BaseException:
                instance.outstanding -= 1
                raise
            return self._limit(answer, started), instance, started, partial(_done, instance)

    async def _open_serverless(self, req: Invocation, variant: VariantRoute) -> Opened:
        """The answer's head from a serverless instance reserved for this stream (started
        for it, maybe) and given back to the pool when the stream is freed; the cold start
        counts against the invocation timeout, as in `ServerlessInvoker`."""
        serverless = self.plane.serverless
        assert serverless is not None
        core, capacity = self.plane.core, serverless.capacity
        started = self.clock()
        instance = await capacity.acquire(req.endpoint, variant.name, core.timeout_s)

        def free() -> None:
            # The pool's release only wakes its waiters: run it as a task so a sync
            # close (a client gone) gives the instance back too.
            task = asyncio.ensure_future(capacity.release(req.endpoint, variant.name, instance))
            self._releases.add(task)
            task.add_done_callback(self._releases.discard)

        asked = self.clock()
        remaining_s = max(core.timeout_s - (asked - started), 0.001)
        try:
            answer = await self.opener(
                instance.address, b"/invocations", req.forward, req.body, remaining_s
            )
        except TimeoutError as exc:
            free()
            raise core.timed_out(req.endpoint, "primary", instance.log_path) from exc
        except (InstanceUnreachable, InstanceDisconnected) as exc:
            free()
            if core.health.is_alive(instance):
                raise ServiceUnavailable(
                    f"Instance {instance.instance_id} of variant {variant.name} could not "
                    f"be reached ({type(exc).__name__}); retry."
                ) from exc
            raise serverless.exited(req.endpoint, variant, instance) from exc
        except BaseException:
            free()
            raise
        answer.timeout_s = core.timeout_s  # each later part gets the whole timeout
        return self._limit(answer, asked), instance, started, free

    async def _relay(
        self,
        route: EndpointRoute,
        req: Invocation,
        variant: VariantRoute,
        opened: tuple[StreamedAnswer, Instance, float],
        inference_id: str | None,
        release: Callable[[], None],
    ) -> AsyncIterator[bytes]:
        plane = self.plane
        answer, instance, started = opened
        keep = route.capture is not None and not variant.serverless  # as `DataPlane.invoke`
        kept: list[bytes] = []
        status = answer.status
        try:
            async for part in answer.parts():
                if keep:
                    kept.append(part)
                yield part
        except StreamTimeExceeded as exc:
            status = 500
            raise self._timed_out(
                req,
                instance,
                # SageMaker's words (its container is `primary`), and the limit.
                "Your model primary did not complete sending the inference response in the "
                f"allotted time ({self.max_duration_s:g} s for the whole stream).",
            ) from exc
        except TimeoutError as exc:
            status = 500
            raise self._timed_out(
                req,
                instance,
                f"The model sent no part of its answer for {plane.core.timeout_s:g} s.",
            ) from exc
        except InstanceStreamFailed as exc:
            status = 500
            raise ModelStreamError(
                f"The model's response stream failed after it started: {exc.message}",
                "StreamBroken",
            ) from exc
        except InstanceDisconnected as exc:
            status = 500
            raise ModelStreamError(await self._broken(instance, exc), "StreamBroken") from exc
        finally:
            release()
            sent = Sent(status, answer.headers, b"".join(kept), instance, self._us(started))
            plane._record(req, variant, sent)
            if keep and status < 400:
                plane._capture(route, req, variant.name, sent, inference_id)

    def _timed_out(self, req: Invocation, instance: Instance, message: str) -> ModelStreamError:
        log.warning(
            "stream %s of endpoint %s (instance %s) cut off: %s",
            req.request_id,
            req.endpoint,
            instance.instance_id,
            message,
        )
        return ModelStreamError(message, "ModelInvocationTimeExceeded")

    async def _broken(self, instance: Instance, exc: InstanceDisconnected) -> str:
        """Why a stream broke off without its instance saying why (a user's server that
        dropped the connection, or an instance that died: a dying process closes its
        sockets a moment before its exit can be seen, so that is looked for a moment)."""
        deadline = perf_counter() + EXIT_SEEN_S
        while self.plane.core.health.is_alive(instance):
            if perf_counter() >= deadline:
                return f"The model's response stream broke: {exc}"
            await asyncio.sleep(EXIT_SEEN_S / 10)
        return (
            f"The model's response stream broke: instance {instance.instance_id} exited "
            f"mid-stream (see its log, {instance.log_path})."
        )


def _done(instance: Instance) -> None:
    instance.outstanding -= 1
