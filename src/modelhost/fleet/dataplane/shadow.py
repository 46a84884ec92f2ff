"""Shadow copies: a share of production requests mirrored to shadow variants.

A copy is built while the production request is served but starts only after the
production answer is sent (the transport calls `start` then), so a shadow never delays
the answer; at most `max_in_flight` copies run, beyond that a copy is dropped, never
queued. Each copy's answer is recorded beside the production one (telemetry's shadow
report) and in the shadow variant's metrics.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from modelhost.errors import ModelError, ServiceUnavailable
from modelhost.fleet.dataplane.core import Headers, Invoker, Sent
from modelhost.fleet.instance import Instance
from modelhost.routing.choose import pick_instance
from modelhost.routing.table import ShadowRoute, Target
from modelhost.telemetry import shadow_report

if TYPE_CHECKING:
    from modelhost.telemetry.metrics import InvocationMetrics

log = logging.getLogger("modelhost.gateway")

ShadowJob = Callable[[], Awaitable[None]]
SHADOW_MAX_IN_FLIGHT = 64


class ShadowMirror:
    """Builds and runs shadow copies (see the module docstring)."""

    def __init__(
        self,
        core: Invoker,
        metrics: InvocationMetrics,
        home: Path,
        max_in_flight: int = SHADOW_MAX_IN_FLIGHT,
    ) -> None:
        self.core = core
        self.metrics = metrics
        self.home = home
        self.max_in_flight = max_in_flight
        # Running copies, held so they are not garbage collected mid-flight.
        self.tasks: set[asyncio.Task[None]] = set()
        self.dropped = 0

    def jobs(
        self,
        endpoint: str,
        shadows: tuple[ShadowRoute, ...],
        forward: Headers,
        body: bytes,
        inference_id: str,
        production: dict[str, object],
    ) -> list[ShadowJob]:
        """The copies this request gets (each shadow samples its share)."""
        jobs: list[ShadowJob] = []
        for shadow in shadows:
            if not shadow.instances or self.core.rand() >= shadow.share:
                continue

            async def job(shadow: ShadowRoute = shadow) -> None:
                try:
                    await self._mirror(endpoint, shadow, forward, body, inference_id, production)
                except Exception:
                    log.exception("shadow copy to %s/%s failed", endpoint, shadow.name)

            jobs.append(job)
        return jobs

    def start(self, job: ShadowJob) -> None:
        if len(self.tasks) >= self.max_in_flight:
            self.dropped += 1
            return
        task = asyncio.ensure_future(job())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _mirror(
        self,
        endpoint: str,
        shadow: ShadowRoute,
        forward: Headers,
        body: bytes,
        inference_id: str,
        production: dict[str, object],
    ) -> None:
        """Send the copy to one shadow instance; record its metrics and the pair."""
        core = self.core
        status: int | None = None
        out = b""
        content_type: str | None = None
        started = time.perf_counter()

        def pick(tried: frozenset[str]) -> Target | None:
            return pick_instance(shadow.instances, core.rand, tried)

        async def attempt(instance: Instance) -> Sent:
            status, headers, out = await core.post(instance, b"/invocations", forward, body)
            return Sent(status, headers, out, instance, 0.0)

        try:
            sent = await core.run(endpoint, shadow.name, pick, attempt)
            status, out = sent.status, sent.body
            ctype = sent.headers.get(b"content-type")
            content_type = ctype.decode("latin-1") if ctype is not None else None
        except (ServiceUnavailable, ModelError):
            pass  # no answer: recorded as a failed side of the pair
        latency_us = (time.perf_counter() - started) * 1e6
        if status is not None:
            self.metrics.series(endpoint, shadow.name).record(
                status=status,
                instances=len(shadow.instances),
                model_us=latency_us,
                total_us=latency_us,
            )
        now = time.time()
        record = {
            "inference_id": inference_id,
            "time": now,
            "production": production,
            "shadow": shadow_report.side(shadow.name, status, latency_us, content_type, out),
        }
        shadow_report.append_pair(
            shadow_report.capture_path(self.home, endpoint, shadow.name, now), record
        )
