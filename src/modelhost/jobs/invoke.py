"""Sending one mini-batch to the job's instances: pick, retry, and find a bad record.

Picking, sending and retrying a request that never reached an instance (on another
serving instance) go through the data plane's core (fleet/dataplane/core.py). Retries
(ModelClientConfig.InvocationsMaxRetries) cover what is not the record's fault: no
instance reachable or a connection broken mid-request (the instance died: the fleet's
health check replaces it and the retry waits for a serving instance), a timeout
(InvocationsTimeoutInSeconds), and 503 (still loading). Any other error status means the
model rejected the input; the mini-batch is then bisected, one request per step, to
name the first record the model refuses and quote the model's own message for it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass

from modelhost.errors import ServiceUnavailable
from modelhost.fleet.dataplane.core import Invoker as Core
from modelhost.fleet.http1 import HTTP1Pool
from modelhost.fleet.instance import Instance
from modelhost.fleet.variant import VariantFleet
from modelhost.routing.choose import pick_instance
from modelhost.routing.table import Target

_RETRY_BACKOFF_S = 0.2
_MAX_MESSAGE = 600


class NoInstance(Exception):
    """No instance of the job became healthy in time; the text is the FailureReason."""


class InvocationFailed(Exception):
    """Retries are exhausted for reasons that are not the record's (the text says which)."""


@dataclass(frozen=True)
class Rejection:
    """The model answered an error status for a request."""

    status: int
    message: str


@dataclass(frozen=True)
class _Reply:
    instance: Instance
    status: int | None  # None: no answer within InvocationsTimeoutInSeconds
    body: bytes


class _FleetHealth:
    """The job's fleet as the data plane's health sink: an instance that cannot be reached
    leaves service (the job's health loop replaces it). A connection broken mid-request
    is not resent by the core: the retry policy below decides."""

    def __init__(self, fleet: VariantFleet) -> None:
        self.fleet = fleet

    def report_unreachable(self, endpoint: str, instance: Instance) -> None:
        self.fleet.mark_unreachable(instance)

    def is_alive(self, instance: Instance) -> bool:
        return False


class Invoker:
    """POSTs bodies to the least busy serving instance of `fleet` through the data
    plane's core (which retries what never reached an instance on another one)."""

    def __init__(
        self,
        fleet: VariantFleet,
        pool: HTTP1Pool,
        headers: list[tuple[bytes, bytes]],
        timeout_s: float,
        max_retries: int,
        wait_for_instance_s: float,
    ) -> None:
        self.fleet = fleet
        self.headers = headers
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.wait_for_instance_s = wait_for_instance_s
        self.core = Core(pool, _FleetHealth(fleet), random.random, timeout_s, lambda _e, _p: "")

    async def _wait_serving(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_for_instance_s
        while not self.fleet.serving():
            if loop.time() > deadline:
                raise NoInstance(
                    f"no instance of the job was healthy for {self.wait_for_instance_s:.0f} s"
                )
            await asyncio.sleep(0.05)

    def _pick(self, tried: frozenset[str]) -> Target | None:
        return pick_instance(self.fleet.serving(), self.core.rand, tried)

    async def _send(self, body: bytes) -> _Reply:
        async def attempt(instance: Instance) -> _Reply:
            try:
                status, _headers, answer = await self.core.post(
                    instance, b"/invocations", self.headers, body
                )
            except TimeoutError:
                return _Reply(instance, None, b"")
            return _Reply(instance, status, answer)

        spec = self.fleet.spec
        return await self.core.run(spec.endpoint_name, spec.variant_name, self._pick, attempt)

    async def post(self, body: bytes) -> bytes | Rejection:
        """The answer body, or the model's Rejection; raises InvocationFailed/NoInstance."""
        last = ""
        for _attempt in range(self.max_retries + 1):
            await self._wait_serving()
            try:
                reply = await self._send(body)
            except ServiceUnavailable as exc:  # died or refused: a replacement is coming
                last = exc.message
                await asyncio.sleep(_RETRY_BACKOFF_S)
                continue
            inst = reply.instance
            if reply.status is None:
                last = (
                    f"instance {inst.instance_id} did not answer within "
                    f"InvocationsTimeoutInSeconds ({self.timeout_s:.0f} s)"
                )
                continue
            if reply.status < 400:
                return reply.body
            message = reply.body.decode("utf-8", "replace").strip()[:_MAX_MESSAGE]
            if reply.status == 503:
                last = f"instance {inst.instance_id} answered 503: {message}"
                await asyncio.sleep(_RETRY_BACKOFF_S)
                continue
            return Rejection(reply.status, message)
        raise InvocationFailed(
            f"the invocation failed after {self.max_retries + 1} attempts "
            f"(InvocationsMaxRetries {self.max_retries}): {last}"
        )

    async def find_rejected(
        self, records: list[bytes], body_of: Callable[[list[bytes]], bytes], first: Rejection
    ) -> tuple[int, Rejection]:
        """0-based index of the first record the model rejects, and its rejection.
        Halves the range each step: the left half is probed; if it passes, the bad
        record is on the right."""
        lo, hi = 0, len(records)
        found, found_for = first, (lo, hi)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            answer = await self.post(body_of(records[lo:mid]))
            if isinstance(answer, Rejection):
                hi, found, found_for = mid, answer, (lo, mid)
            else:
                lo = mid
        if found_for != (lo, hi):
            # The last step went right: ask about the record alone, for its own message.
            answer = await self.post(body_of(records[lo:hi]))
            if isinstance(answer, Rejection):
                found = answer
        return lo, found
