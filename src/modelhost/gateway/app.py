"""The gateway application: one port for the control plane, the runtime and /metrics.

Requests are told apart the way botocore builds them: control-plane calls are `POST`s
carrying `X-Amz-Target` (at any path, since `endpoint_url` may have a prefix); runtime
calls are `POST .../endpoints/{name}/{action}`. Everything else goes to a small
Starlette app (health, metrics).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from modelhost import __version__
from modelhost.compile.edge_capture import EdgeCaptures
from modelhost.compile.jobs import CompilationJobs
from modelhost.control.controller import Controller
from modelhost.control.service import ControlPlane
from modelhost.gateway.asgi import Receive, Scope, Send
from modelhost.gateway.auth.guard import Guard
from modelhost.gateway.auth.keys import KeyStore
from modelhost.gateway.auth.keys_api import KeysAPI
from modelhost.gateway.control_api import ControlAPI
from modelhost.gateway.edge_api import EdgeCaptureAPI
from modelhost.gateway.jobs_api import JobsAPI
from modelhost.gateway.native_api import NativeAPI
from modelhost.gateway.openapi import native_openapi
from modelhost.gateway.predictions_api import PredictionsAPI
from modelhost.gateway.runtime_api import RuntimeAPI
from modelhost.jobs.manager import TransformJobs
from modelhost.settings import Settings
from modelhost.store.metadata import Kind, MetadataStore, Record
from modelhost.store.predictions import open_prediction_store
from modelhost.telemetry.alarms import AlarmBook
from modelhost.telemetry.metrics import CONTENT_TYPE, InvocationMetrics
from modelhost.telemetry.routing_metrics import OutcomeRow, RewardRow, WeightRow

log = logging.getLogger("modelhost.gateway")

ALARM_EVALUATION_INTERVAL_S = 1.0


class Gateway:
    """The ASGI application of `modelhost serve`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.home.mkdir(parents=True, exist_ok=True)
        self.store = MetadataStore(settings.metadata_url)
        self.controller = Controller(settings, self.store)
        self.control = ControlPlane(settings, self.store, self.controller)
        self.metrics = InvocationMetrics()
        self.jobs = TransformJobs(
            settings,
            self.store,
            self.controller.artifacts.fetch,
            self.controller.artifacts.fetch_source,
        )
        # Transform jobs sit above control (DESIGN §3); the API serves both as one.
        self.control.operations.update(self.jobs.operations)
        self.compilations = CompilationJobs(settings, self.store, self.controller.artifacts.fetch)
        self.control.operations.update(self.compilations.operations)
        self.control_api = ControlAPI(self.control)
        self.runtime_api = RuntimeAPI(
            self.controller,
            self.metrics,
            settings.max_payload_bytes,
            settings.invocation_timeout_s,
            settings.account_id,
            settings.region,
        )
        self.alarms = AlarmBook(self.metrics.recent, self._persist_alarm)
        self.alarms.load([r.spec for r in self.store.list(Kind.ALARM)])
        self.controller.alarm_state = self.alarms.state
        self.metrics.routing.weights = self._weight_rows
        self.metrics.routing.rewards = self._reward_rows
        self.metrics.routing.outcomes = self._outcome_rows
        self.native_api = NativeAPI(self.alarms, self.store, self.control, settings.home)
        self.predictions_api = PredictionsAPI(open_prediction_store(settings), settings)
        self.jobs.predictions = self.predictions_api.backend
        # Keys live in home even with auth off, so turning it on later keeps them.
        self.keys = KeyStore(settings.home)
        self.new_admin_key = self.keys.ensure_admin() if settings.auth_enabled else None
        self.keys.record_url(settings.base_url)
        self.guard = Guard(settings, self.keys if settings.auth_enabled else None)
        self.other = Starlette(
            routes=[
                Route("/ping", self.ping),
                Route("/healthz", self.ping),
                Route("/metrics", self.prometheus),
                Route("/api/openapi.json", self.openapi),
                *self.native_api.routes(),
                *JobsAPI(self.jobs).routes(),
                *KeysAPI(self.keys).routes(),
                *EdgeCaptureAPI(EdgeCaptures(settings.home)).routes(),
            ],
            lifespan=self.lifespan,
        )

    @asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        await self.controller.start()
        await self.jobs.start()
        await self.compilations.start()
        alarm_loop = asyncio.ensure_future(self._evaluate_alarms())
        # Everything imported so far lives as long as the process; freezing it keeps full
        # collections (tens of ms) off the request path.
        gc.collect()
        gc.freeze()
        log.info(
            "modelhost %s listening on %s (home %s)",
            __version__,
            self.settings.base_url,
            self.settings.home,
        )
        if self.new_admin_key is not None:
            log.warning(
                "created the admin access key %s (secret stored encrypted in %s/auth); "
                'export it with: eval "$(modelhost credentials --home %s --url %s)"',
                self.new_admin_key[0],
                self.settings.home,
                self.settings.home,
                self.settings.base_url,
            )
        if not self.settings.auth_enabled:
            log.warning("authentication is OFF: anyone who can reach this port can use it")
        try:
            yield
        finally:
            alarm_loop.cancel()
            await self.jobs.stop()
            await self.compilations.stop()
            await self.controller.stop()
            self.store.close()
            await self.predictions_api.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.guard(scope, receive, send, self.dispatch)

    async def dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/predictions"):
            await self.predictions_api(scope, receive, send)
            return
        if scope["type"] == "http" and scope["method"] == "POST":
            for name, _ in scope["headers"]:
                if name == b"x-amz-target":
                    await self.control_api(scope, receive, send)
                    return
            raw = scope.get("raw_path") or scope["path"].encode()
            # `/api/endpoints/...` is modelhost's own API (e.g. promote-shadow).
            if b"/endpoints/" in raw and not raw.startswith(b"/api/"):
                await self.runtime_api(scope, receive, send)
                return
        await self.other(scope, receive, send)

    def _persist_alarm(self, name: str, document: dict[str, Any] | None) -> None:
        if document is None:
            self.store.delete(Kind.ALARM, name)
            return
        now = time.time()
        record = self.store.get(Kind.ALARM, name)
        if record is None:
            self.store.create(
                Record(Kind.ALARM, name, f"alarm:{name}", document, [], None, None, now, now)
            )
        else:
            record.spec, record.modified_s = document, now
            self.store.save(record)

    async def _evaluate_alarms(self) -> None:
        while True:
            await asyncio.sleep(ALARM_EVALUATION_INTERVAL_S)
            try:
                self.alarms.evaluate_all()
            except Exception:
                log.exception("alarm evaluation failed")

    def _weight_rows(self) -> list[WeightRow]:
        rows = []
        for route in self.controller.table.endpoints.values():
            serving = [v for v in route.variants if v.instances]
            total = sum(v.weight for v in serving)
            for v in serving:
                rows.append(WeightRow(route.name, v.name, v.weight / total if total else 0.0))
        return rows

    def _reward_rows(self) -> list[RewardRow]:
        return [
            RewardRow(endpoint, variant, arm.rewards, arm.reward_sum)
            for endpoint, bandit in self.controller.bandits.items()
            for variant, arm in bandit.arms.items()
        ]

    def _outcome_rows(self) -> list[OutcomeRow]:
        return [
            OutcomeRow(endpoint, outcome, count)
            for endpoint, bandit in self.controller.bandits.items()
            for outcome, count in bandit.outcomes.items()
        ]

    async def ping(self, _request: Request) -> Response:
        return JSONResponse({"status": "Healthy", "version": __version__})

    async def openapi(self, _request: Request) -> Response:
        return JSONResponse(native_openapi())

    async def prometheus(self, _request: Request) -> Response:
        return Response(self.metrics.exposition(), media_type=CONTENT_TYPE)
