"""Async workers: lease queued requests, invoke through the data plane, write the answer.

A reconciler over the queue: each `tick` looks at every async endpoint, fails requests
past their TTL (no instance needed for that), and leases as many more as
MaxConcurrentInvocationsPerInstance × serving instances allows, minus those already
running here. An endpoint with no instance leases nothing: its requests wait (the
HasBacklogWithoutCapacity metric says so) and run when an instance appears.

Invocations go through the gateway's own data plane (routing, retries on another
instance, metrics), never a second HTTP path. Before invoking, a request whose output (or
failure) object already exists is finished without running again: its previous worker
wrote it and died before recording that, so it completes once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from modelhost.errors import ArtifactError, ModelError, ServiceUnavailable, ValidationError
from modelhost.fleet.dataplane.plane import DataPlane, Invocation
from modelhost.jobs.asyncinf.config import AsyncEndpointConfig
from modelhost.jobs.asyncinf.lease import capacity, is_expired
from modelhost.jobs.asyncinf.metrics import AsyncMetrics
from modelhost.jobs.asyncinf.payloads import Payloads
from modelhost.store.queue import AsyncQueue, QueuedRequest

log = logging.getLogger("modelhost.async")
T = TypeVar("T")

_VARIANT = b"x-amzn-invoked-production-variant"


@dataclass(frozen=True)
class WorkerSettings:
    """The workers' knobs (from Settings, passed explicitly)."""

    lease_s: float
    heartbeat_s: float
    poll_interval_s: float
    account_id: str


def new_owner() -> str:
    """A lease owner id unique to this process (and this start of it)."""
    return f"{socket.gethostname()[:24]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class AsyncWorkers:
    """Runs the queue's requests on the endpoints' instances (see the module docstring)."""

    def __init__(
        self,
        queue: AsyncQueue,
        plane: DataPlane,
        configs: Callable[[], dict[str, AsyncEndpointConfig]],
        payloads: Payloads,
        metrics: AsyncMetrics,
        knobs: WorkerSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.queue = queue
        self.plane = plane
        self.configs = configs
        self.payloads = payloads
        self.metrics = metrics
        self.knobs = knobs
        self.clock = clock
        self.owner = new_owner()
        self.in_flight: dict[str, set[str]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake: asyncio.Event | None = None
        self._expiry_checked_s = 0.0
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="async-worker")

    def instances(self, endpoint: str) -> int:
        """Serving instances of `endpoint` in the current routing snapshot."""
        route = self.plane.routes.table.endpoints.get(endpoint)
        if route is None or route.unavailable_reason:
            return 0
        return sum(len(v.instances) for v in route.variants)

    async def tick(self) -> None:
        """One pass over every async endpoint: expire, then lease up to capacity."""
        now = self.clock()
        # Expiry needs no hurry: once per poll interval, however often passes are woken.
        check_expiry = now - self._expiry_checked_s >= self.knobs.poll_interval_s
        if check_expiry:
            self._expiry_checked_s = now
        for endpoint, config in self.configs().items():
            running = self.in_flight.setdefault(endpoint, set())
            expired: list[QueuedRequest] = []
            if check_expiry:
                expired = await self._io(
                    self.queue.lease, endpoint, self.owner, now, self.knobs.lease_s, 50, True
                )
            per_instance = config.max_concurrent_per_instance
            free = capacity(per_instance, self.instances(endpoint), len(running))
            leased = await self._io(
                self.queue.lease, endpoint, self.owner, now, self.knobs.lease_s, free
            )
            for request in [*expired, *leased]:
                running.add(request.request_id)
                task = asyncio.ensure_future(self._run(request, config))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def wake(self) -> None:
        """Run the next pass now (a request arrived or one finished), not at the next poll."""
        if self._wake is not None:
            self._wake.set()

    async def run(self) -> None:
        self._wake = asyncio.Event()
        while True:
            self._wake.clear()
            try:
                await self.tick()
            except Exception:
                log.exception("async worker pass failed")
            # The poll still runs: other gateways' requests and lease expiries wake no one.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.knobs.poll_interval_s)

    async def heartbeat(self) -> None:
        """Renew the leases of everything running here, well before they run out."""
        while True:
            await asyncio.sleep(self.knobs.heartbeat_s)
            ids = [i for running in self.in_flight.values() for i in running]
            try:
                await self._io(
                    self.queue.heartbeat, ids, self.owner, self.clock(), self.knobs.lease_s
                )
            except Exception:
                log.exception("async lease heartbeat failed")

    async def stop(self) -> None:
        """Cancel running requests and put them back in the queue for the next start (or
        another gateway); one whose answer was already written is finished then, not rerun."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            await asyncio.to_thread(self.queue.release_all, self.owner)
        except Exception:
            log.exception("could not release the async requests of %s", self.owner)
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _run(self, request: QueuedRequest, config: AsyncEndpointConfig) -> None:
        try:
            await self._attempt(request, config)
        except Exception:
            log.exception("async request %s failed unexpectedly", request.inference_id)
            await self._io(self.queue.release, request.request_id, self.owner)
        finally:
            self.in_flight.get(request.endpoint, set()).discard(request.request_id)
            self.wake()

    async def _io(self, fn: Callable[..., T], *args: Any) -> T:
        # The workers' own threads: file and database work never queues behind (or
        # starves) the default executor the gateway's 202 path uses.
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args))

    def _prepare(self, request: QueuedRequest) -> tuple[str, bytes | str | None]:
        """In one thread hop: what to do with a leased request, and its input.
        ("done" | "failed" | "expired" | "unreadable" | "run", payload or message).
        Only a request run before (attempts > 1) can have left an answer behind."""
        if request.attempts > 1 and self.payloads.exists(request.output_location):
            return "done", None  # written by a worker that died before recording it
        failure_at = request.failure_location or request.output_location
        if request.attempts > 1 and self.payloads.exists(failure_at):
            return "failed", None
        if is_expired(request, self.clock()):
            return "expired", None
        if request.payload is not None:
            return "run", request.payload
        try:
            return "run", self.payloads.read(request.input_location or "")
        except ArtifactError as exc:
            return "unreadable", exc.message

    async def _attempt(self, request: QueuedRequest, config: AsyncEndpointConfig) -> None:
        step, found = await self._io(self._prepare, request)
        if step == "done":
            await self._finish(request, config, None, "")
        elif step == "failed":
            await self._finish(request, config, "the request failed earlier", "")
        elif step == "expired":
            ttl_s = request.expires_s - request.received_s
            reason = (
                f"Request {request.inference_id} expired: it waited longer than its "
                f"RequestTTLSeconds ({ttl_s:.0f} s) in the queue."
            )
            await self._fail(request, config, reason, "ExpiredRequests")
        elif step == "unreadable":
            await self._fail(request, config, str(found), "RequestDownloadFailures")
        elif isinstance(found, bytes):
            await self._invoke(request, config, found)

    async def _invoke(
        self, request: QueuedRequest, config: AsyncEndpointConfig, body: bytes
    ) -> None:
        started = time.perf_counter()
        try:
            route = self.plane.route(request.endpoint, self.knobs.account_id)
            _status, headers, answer = await asyncio.wait_for(
                self.plane.invoke(route, _invocation(request, body, started), []),
                request.invocation_timeout_s,
            )
        except ServiceUnavailable:
            # No serving instance right now (restarting, scaled to zero): back in the queue.
            await self._io(self.queue.release, request.request_id, self.owner)
            return
        except ValidationError as exc:
            if self.instances(request.endpoint) == 0:  # not InService (updating, restarting)
                await self._io(self.queue.release, request.request_id, self.owner)
            else:  # the endpoint cannot take this request (e.g. multi-model needs a target)
                await self._fail(request, config, exc.message)
            return
        except ModelError as exc:
            await self._fail(request, config, exc.original_message or exc.message)
            return
        except TimeoutError:
            reason = (
                f"Request {request.inference_id} timed out: the model did not answer within "
                f"InvocationTimeoutSeconds ({request.invocation_timeout_s:.0f} s)."
            )
            await self._fail(request, config, reason)
            return
        variant = dict(headers).get(_VARIANT, config.first_variant.encode()).decode()
        ctype = dict(headers).get(b"content-type", b"application/octet-stream").decode()
        try:
            done = await self._io(self._complete, request, config, answer, ctype)
        except ArtifactError as exc:
            await self._fail(request, config, exc.message, "ResponseUploadFailures")
            return
        if done:
            self.metrics.processed(request, variant, self.clock(), time.perf_counter() - started)

    def _complete(
        self, request: QueuedRequest, config: AsyncEndpointConfig, answer: bytes, ctype: str
    ) -> bool:
        """Write the answer (once), then record the request as done: one thread hop."""
        self.payloads.write_once(request.output_location, answer, request.attempts > 1)
        return self._record(request, config, None, ctype)

    async def _fail(
        self,
        request: QueuedRequest,
        config: AsyncEndpointConfig,
        reason: str,
        metric: str = "InvocationFailures",
    ) -> None:
        failure_at = request.failure_location or request.output_location
        try:
            await self._io(self.payloads.write_once, failure_at, reason.encode())
        except ArtifactError as exc:
            log.warning("cannot write the failure of %s: %s", request.inference_id, exc)
        if await self._finish(request, config, reason, "text/plain"):
            self.metrics.count(request.endpoint, config.first_variant, metric)

    async def _finish(
        self, request: QueuedRequest, config: AsyncEndpointConfig, reason: str | None, ctype: str
    ) -> bool:
        return await self._io(self._record, request, config, reason, ctype)

    def _record(
        self, request: QueuedRequest, config: AsyncEndpointConfig, reason: str | None, ctype: str
    ) -> bool:
        notify = bool(config.error_topic if reason is not None else config.success_topic)
        done = self.queue.finish(
            request.request_id,
            self.owner,
            self.clock(),
            reason is None,
            reason,
            notify,
            ctype or None,
        )
        if not done:
            log.warning("async request %s: lease lost before it finished", request.inference_id)
        return done


def _invocation(request: QueuedRequest, body: bytes, started: float) -> Invocation:
    headers: dict[bytes, bytes] = {}
    for field, header in (
        ("ContentType", b"content-type"),
        ("Accept", b"accept"),
        ("CustomAttributes", b"x-amzn-sagemaker-custom-attributes"),
    ):
        if request.headers.get(field):
            headers[header] = request.headers[field].encode("latin-1")
    headers[b"x-amzn-sagemaker-inference-id"] = request.inference_id.encode("latin-1")
    return Invocation(
        endpoint=request.endpoint,
        headers=headers,
        forward=list(headers.items()),
        body=body,
        target_model=None,
        target_variant=None,
        started_s=started,
        request_id=request.request_id,
    )
