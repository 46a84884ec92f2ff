"""Sending one mini-batch to the job's instances: pick, retry, and find a bad record.

Retries (ModelClientConfig.InvocationsMaxRetries) cover what is not the record's fault:
a refused or broken connection (the instance died: the fleet's health check replaces
it and the retry waits for a serving instance without spending an attempt), a timeout
(InvocationsTimeoutInSeconds), and 503 (still loading). Any other error status means the
model rejected the input; the mini-batch is then bisected, one request per step, to
name the first record the model refuses and quote the model's own message for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from modelhost.fleet.http1 import HTTP1Pool, InstanceDisconnected, InstanceUnreachable
from modelhost.fleet.instance import Instance
from modelhost.fleet.variant import VariantFleet

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


class Invoker:
    """POSTs bodies to the least busy serving instance of `fleet`."""

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
        self.pool = pool
        self.headers = headers
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.wait_for_instance_s = wait_for_instance_s

    async def _pick(self) -> Instance:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_for_instance_s
        while True:
            serving = self.fleet.serving()
            if serving:
                return min(serving, key=lambda i: i.outstanding)
            if loop.time() > deadline:
                raise NoInstance(
                    f"no instance of the job was healthy for {self.wait_for_instance_s:.0f} s"
                )
            await asyncio.sleep(0.05)

    async def post(self, body: bytes) -> bytes | Rejection:
        """The answer body, or the model's Rejection; raises InvocationFailed/NoInstance."""
        last = ""
        for _attempt in range(self.max_retries + 1):
            inst = await self._pick()
            inst.outstanding += 1
            try:
                status, _headers, answer = await self.pool.request(
                    inst.port, b"POST", b"/invocations", self.headers, body, self.timeout_s
                )
            except (InstanceUnreachable, InstanceDisconnected) as exc:
                self.fleet.mark_unreachable(inst)
                last = f"instance {inst.instance_id}: {exc}"
                await asyncio.sleep(_RETRY_BACKOFF_S)
                continue
            except TimeoutError:
                last = (
                    f"instance {inst.instance_id} did not answer within "
                    f"InvocationsTimeoutInSeconds ({self.timeout_s:.0f} s)"
                )
                continue
            finally:
                inst.outstanding -= 1
            if status < 400:
                return answer
            message = answer.decode("utf-8", "replace").strip()[:_MAX_MESSAGE]
            if status == 503:
                last = f"instance {inst.instance_id} answered 503: {message}"
                await asyncio.sleep(_RETRY_BACKOFF_S)
                continue
            return Rejection(status, message)
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
