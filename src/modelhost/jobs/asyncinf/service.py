"""Asynchronous inference as one service: accept requests, run them, report and notify.

`submit` writes the request to the durable queue (before the gateway answers 202);
`start` runs the loops: the workers (worker.py), lease heartbeats, notifications
(notify.py) and the backlog metrics (metrics.py). Which endpoints are asynchronous is read
from their stored specs (a config snapshot with AsyncInferenceConfig) and kept in memory,
so the runtime's hot path can refuse InvokeEndpoint on them with a dict lookup.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from modelhost.errors import ValidationError
from modelhost.fleet.dataplane.plane import DataPlane
from modelhost.jobs.asyncinf.config import (
    ERROR_TOPIC,
    SUCCESS_TOPIC,
    AsyncEndpointConfig,
    async_config,
    locations,
)
from modelhost.jobs.asyncinf.metrics import AsyncMetrics
from modelhost.jobs.asyncinf.notify import Notifier, message, to_json
from modelhost.jobs.asyncinf.payloads import Payloads
from modelhost.jobs.asyncinf.worker import AsyncWorkers, WorkerSettings
from modelhost.settings import Settings
from modelhost.store.metadata import Kind, MetadataStore
from modelhost.store.queue import AsyncQueue, QueuedRequest, RequestStatus
from modelhost.telemetry.metric_store import MetricStore

log = logging.getLogger("modelhost.async")

DEFAULT_INVOCATION_TIMEOUT_S = 900  # SageMaker's default InvocationTimeoutSeconds
_IDS = uuid.UUID("6d0c1f3e-5a7b-4c2d-9e8f-a1b2c3d4e5f6")  # namespace of derived request ids


@dataclass(frozen=True)
class Submission:
    """One InvokeEndpointAsync request, validated by the transport."""

    endpoint: str
    input_location: str | None
    payload: bytes | None
    content_type: str | None = None
    accept: str | None = None
    custom_attributes: str | None = None
    inference_id: str | None = None
    ttl_s: int | None = None
    invocation_timeout_s: int | None = None
    output_extension: str | None = None
    filename: str | None = None


class AsyncInference:
    """InvokeEndpointAsync's queue, workers, notifications and metrics."""

    def __init__(
        self,
        settings: Settings,
        store: MetadataStore,
        plane: DataPlane,
        series: MetricStore,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.queue = AsyncQueue(store)
        self.configs: dict[str, AsyncEndpointConfig] = {}
        self.metrics = AsyncMetrics(series)
        self.payloads = Payloads(settings.s3_endpoint_url, settings.home / "async-scratch")
        self.notifier = Notifier(
            settings.sns_endpoint_url, settings.region, settings.async_webhook_attempts
        )
        knobs = WorkerSettings(
            lease_s=settings.async_lease_s,
            heartbeat_s=settings.async_heartbeat_s,
            poll_interval_s=settings.async_poll_interval_s,
            account_id=settings.account_id,
        )
        self.workers = AsyncWorkers(
            self.queue, plane, lambda: self.configs, self.payloads, self.metrics, knobs, clock
        )
        self._loops: list[asyncio.Future[None]] = []
        self._notifying: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # --- which endpoints are asynchronous ----------------------------------------------

    def refresh(self) -> None:
        """Re-read the async endpoints from the store (create, update and delete)."""
        found = {}
        for record in self.store.list(Kind.ENDPOINT):
            config = async_config(record.spec, self.settings.async_default_concurrency)
            if config is not None:
                found[record.name] = config
        self.configs = found

    def is_async(self, endpoint: str) -> bool:
        return endpoint in self.configs

    # --- accepting ------------------------------------------------------------------

    def submit(self, sub: Submission) -> QueuedRequest:
        """Queue `sub` durably; a repeated InferenceId returns the first request's row."""
        config = self.configs.get(sub.endpoint)
        if config is None:
            self.refresh()
            config = self.configs.get(sub.endpoint)
        if config is None:
            raise ValidationError(
                f"Endpoint {sub.endpoint} is not an asynchronous endpoint; use InvokeEndpoint, "
                "or create it from an endpoint config with AsyncInferenceConfig."
            )
        if sub.inference_id:
            # Derived from the id, so a retried call names the same output object.
            request_id = str(uuid.uuid5(_IDS, f"{sub.endpoint}\0{sub.inference_id}"))
        else:
            request_id = str(uuid.uuid4())
        output, failure = locations(config, request_id, sub.output_extension, sub.filename)
        now = self.clock()
        headers = {
            k: v
            for k, v in (
                ("ContentType", sub.content_type),
                ("Accept", sub.accept),
                ("CustomAttributes", sub.custom_attributes),
            )
            if v
        }
        ttl_s = float(sub.ttl_s or self.settings.async_request_ttl_s)
        row, _new = self.queue.enqueue(
            QueuedRequest(
                request_id=request_id,
                endpoint=sub.endpoint,
                inference_id=sub.inference_id or request_id,
                output_location=output,
                failure_location=failure,
                received_s=now,
                expires_s=now + ttl_s,
                invocation_timeout_s=float(
                    sub.invocation_timeout_s or DEFAULT_INVOCATION_TIMEOUT_S
                ),
                headers=headers,
                input_location=sub.input_location,
                payload=sub.payload,
            )
        )
        return row

    # --- loops ----------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(self.refresh)
        self._loops = [
            asyncio.ensure_future(self.workers.run()),
            asyncio.ensure_future(self.workers.heartbeat()),
            asyncio.ensure_future(self._upkeep()),
        ]

    async def stop(self) -> None:
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        await self.workers.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _upkeep(self) -> None:
        """Every second: refresh the async endpoints, sample the backlog, send what is due;
        every minute, forget requests finished longer ago than `async_retention_s`."""
        purged_at = 0.0
        while True:
            try:
                if self.clock() - purged_at >= 60:
                    purged_at = self.clock()
                    cutoff = purged_at - self.settings.async_retention_s
                    await asyncio.to_thread(self.queue.purge, cutoff)
                await asyncio.to_thread(self.refresh)
                backlogs = await asyncio.to_thread(self.queue.backlogs)
                now = self.clock()
                for gone in set(backlogs) - set(self.configs):
                    reason = f"Endpoint {gone} was deleted (or is no longer asynchronous)."
                    await asyncio.to_thread(self.queue.abandon, gone, reason, now)
                for endpoint in self.configs:
                    instances = self.workers.instances(endpoint)
                    self.metrics.backlog(endpoint, backlogs.get(endpoint), instances, now)
                await self._send_notifications()
            except Exception:
                log.exception("async upkeep failed")
            await asyncio.sleep(min(1.0, self.settings.async_poll_interval_s * 5))

    async def _send_notifications(self) -> None:
        for row in await asyncio.to_thread(self.queue.pending_notifications):
            if row.request_id in self._notifying:
                continue
            self._notifying.add(row.request_id)
            task = asyncio.ensure_future(self._notify(row))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _notify(self, row: QueuedRequest) -> None:
        try:
            config = self.configs.get(row.endpoint)
            succeeded = row.status is RequestStatus.SUCCEEDED
            topic = (config.success_topic if succeeded else config.error_topic) if config else None
            if config is not None and topic:
                wanted = SUCCESS_TOPIC if succeeded else ERROR_TOPIC
                response = None
                if wanted in config.include_response_in:
                    where = row.output_location if succeeded else row.failure_location
                    response = await asyncio.to_thread(self._read_quietly, where or "")
                text = to_json(message(row, self.settings.region, response))
                if not await self.notifier.deliver(topic, text):
                    self.metrics.count(row.endpoint, config.first_variant, "NotificationFailures")
            await asyncio.to_thread(self.queue.notified, row.request_id)
        finally:
            self._notifying.discard(row.request_id)

    def _read_quietly(self, where: str) -> bytes | None:
        try:
            return self.payloads.read(where)
        except Exception:
            return None
