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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from modelhost import __version__
from modelhost.compile.edge_capture import EdgeCaptures
from modelhost.compile.jobs import CompilationJobs
from modelhost.control.controller import Controller
from modelhost.control.service import ControlPlane
from modelhost.fleet.manager import FleetManager
from modelhost.gateway import table_views
from modelhost.gateway.asgi import Receive, Scope, Send
from modelhost.gateway.auth.guard import Guard
from modelhost.gateway.auth.key_table import KeyTable, gateway_key_store, refresh_loop
from modelhost.gateway.auth.keys import KeyStore
from modelhost.gateway.auth.keys_api import KeysAPI
from modelhost.gateway.auth.session import Sessions
from modelhost.gateway.autoscaling_api import TARGET_PREFIX as AUTOSCALING_TARGET_PREFIX
from modelhost.gateway.autoscaling_api import AutoScalingAPI
from modelhost.gateway.cloudwatch_api import PATH_PREFIX as CLOUDWATCH_PATH
from modelhost.gateway.cloudwatch_api import TARGET as CLOUDWATCH_TARGET
from modelhost.gateway.cloudwatch_api import CloudWatchAPI, wire_of
from modelhost.gateway.control_api import ControlAPI
from modelhost.gateway.dashboard import wiring as dashboard_wiring
from modelhost.gateway.dashboard.data import DashboardData
from modelhost.gateway.dashboard.routes import DashboardRoutes
from modelhost.gateway.edge_api import EdgeCaptureAPI
from modelhost.gateway.forward import LeaderForwarder
from modelhost.gateway.instance_stats import InstanceStats
from modelhost.gateway.jobs_api import JobsAPI
from modelhost.gateway.logs_api import TARGET_PREFIX as LOGS_TARGET_PREFIX
from modelhost.gateway.logs_api import LogsAPI
from modelhost.gateway.native_api import NativeAPI
from modelhost.gateway.openapi import native_openapi
from modelhost.gateway.parts import (
    async_inference,
    capture_writer,
    runtime_api,
    series_store,
    serverless_pool,
    v2_api,
)
from modelhost.gateway.predictions_api import PredictionsAPI
from modelhost.gateway.runtime_api import parse_invocation_path
from modelhost.gateway.scaleout import GatewayRoutes, Leadership
from modelhost.gateway.stored_alarms import StoredAlarms
from modelhost.gateway.v2_api import parse_model_path
from modelhost.jobs.manager import TransformJobs
from modelhost.jobs.monitoring import MonitoringSchedules
from modelhost.jobs.processing import ProcessingJobs
from modelhost.loadtest.recommender import RecommendationJobs
from modelhost.monitor.replay_run import remove_left_behind, server_replayer
from modelhost.scaling.autoscaler import Autoscaler
from modelhost.scaling.book import ScalingBook
from modelhost.scaling.capacity import Capacity
from modelhost.scaling.service import ScalingService
from modelhost.settings import Settings
from modelhost.store.artifacts import ArtifactStore
from modelhost.store.coordination import is_postgres
from modelhost.store.metadata import Kind, MetadataStore
from modelhost.store.outputs import Locations
from modelhost.store.predictions import open_prediction_store
from modelhost.telemetry.alarms import AlarmBook
from modelhost.telemetry.cloudwatch import CloudWatch
from modelhost.telemetry.instance_sampler import InstanceSampler
from modelhost.telemetry.metric_db import SqliteBackend
from modelhost.telemetry.metrics import CONTENT_TYPE, InvocationMetrics

log = logging.getLogger("modelhost.gateway")


class Gateway:
    """The ASGI application of `modelhost serve`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.home.mkdir(parents=True, exist_ok=True)
        self.store = MetadataStore(settings.metadata_url)
        # One owner of every instance: endpoints' (the controller) and transform jobs'.
        self.fleets = FleetManager(settings, ArtifactStore(settings))
        self.controller = Controller(settings, self.store, self.fleets)
        self.control = ControlPlane(settings, self.store, self.controller)
        self.metric_db = SqliteBackend(settings.metrics_db_path)
        self.series = series_store(settings, self.metric_db, self.store.engine)
        self.metrics = InvocationMetrics(self.series)
        self._add_jobs()  # transform, compilation, processing, monitoring, recommendations
        self.control_api = ControlAPI(self.control)
        self.routes = GatewayRoutes(self.controller)
        self.async_inference = async_inference(settings, self.store, self.routes, self.metrics)
        self.serverless = serverless_pool(settings, self.fleets, self.controller, self.series)
        self.runtime_api = runtime_api(
            settings, self.routes, self.metrics, self.async_inference, self.serverless
        )
        self.v2_api = v2_api(settings, self.runtime_api)  # the Open Inference Protocol
        self.stored_alarms = StoredAlarms(self.store, is_postgres(settings.metadata_url))
        # A serverless endpoint through a follower: sent on to the leader (gateway/forward.py).
        self.forwarder = LeaderForwarder(
            settings.invocation_timeout_s + 30, settings.max_payload_bytes + 1024
        )
        self.alarms = AlarmBook(self.metrics.recent, self.stored_alarms.persist)
        self.alarms.load([r.spec for r in self.store.list(Kind.ALARM)])
        self.controller.alarm_state = self.alarms.state
        self.cloudwatch_api = CloudWatchAPI(
            CloudWatch(self.series, self.alarms, settings.region, settings.account_id)
        )
        book = ScalingBook(self.store, settings.region, settings.account_id)
        capacity = Capacity(self.controller)
        self.autoscaling_api = AutoScalingAPI(ScalingService(book, capacity, self._alarms_for))
        self.autoscaler = Autoscaler(
            book, capacity, self.series, self.alarms, settings.scaling_period_s
        )
        self.sampler = InstanceSampler(
            partial(table_views.instance_refs, self.controller), self.series, settings.home
        )
        table_views.feed_routing_metrics(self.metrics.routing, self.controller)
        self.instance_stats = InstanceStats(self.controller, settings.ping_timeout_s, self.metrics)
        replayer = server_replayer(settings, self._self_url)
        self.native_api = NativeAPI(self.alarms, self.store, self.control, settings.home, replayer)
        self.predictions_api = PredictionsAPI(open_prediction_store(settings), settings)
        self.logs_api = LogsAPI(settings)
        self.jobs.predictions = self.predictions_api.backend
        # Keys live in home even with auth off, so turning it on later keeps them; in the
        # database when several gateways share a PostgreSQL (gateway/auth/key_table.py).
        self.keys = gateway_key_store(
            settings.home, settings.database_url, self.store.engine, settings
        )
        if settings.auth_enabled:
            self.keys.check_master_key()  # a wrong master key stops the start, clearly
        self.new_admin_key = self.keys.ensure_admin() if settings.auth_enabled else None
        self.keys.record_url(settings.base_url)
        keys = self.keys if settings.auth_enabled else None
        self.sessions = Sessions(settings.home, settings.dashboard_session_ttl_s)
        self.guard = Guard(settings, keys, sessions=self.sessions)
        self.other = Starlette(routes=self._routes(settings, keys), lifespan=self.lifespan)

    def _routes(self, settings: Settings, keys: KeyStore | None) -> list[BaseRoute]:
        """Everything that is not the SageMaker, CloudWatch or Logs wire APIs."""
        self.native_api.instances = self.instance_stats.describe
        sources = dashboard_wiring.sources(
            settings.home,
            self.store,
            self.control,
            self.jobs,
            self.series,
            self.alarms,
            Locations(settings.s3_endpoint_url),
            self.instance_stats.describe,
        )
        # Sign-in sessions only with auth on; off, the guard admits loopback clients only.
        dashboard = DashboardRoutes(
            DashboardData(sources), keys, self.sessions if keys is not None else None
        )
        return [
            Route("/ping", self.ping),
            Route("/healthz", self.ping),
            Route("/metrics", self.prometheus),
            Route("/api/openapi.json", self.openapi),
            *self.native_api.routes(),
            *JobsAPI(self.jobs).routes(),
            *KeysAPI(self.keys).routes(),
            *EdgeCaptureAPI(EdgeCaptures(settings.home)).routes(),
            *dashboard.routes(),
        ]

    def _add_jobs(self) -> None:
        """The jobs sit above control (DESIGN §3); the control API serves their operations."""
        # Jobs fetch artifacts leased: the bounded cache keeps them while the jobs run.
        settings, fetch = self.settings, self.controller.artifacts.use
        self.jobs = TransformJobs(settings, self.store, self.fleets)
        self.compilations = CompilationJobs(settings, self.store, fetch)
        # Monitoring runs publish their drift metrics like PutMetricData (cloudwatch_api
        # exists by the time a run finishes).
        self.processing = ProcessingJobs(
            settings,
            self.store,
            Locations(settings.s3_endpoint_url),
            lambda params: self.cloudwatch_api.cloudwatch.put_metric_data(params),
        )
        self.monitoring = MonitoringSchedules(settings, self.store, self.processing)
        self.recommendations = RecommendationJobs(
            settings, self.store, self.control, fetch, self._self_url
        )
        for jobs in (
            self.jobs, self.compilations, self.processing, self.monitoring, self.recommendations
        ):  # fmt: skip
            self.control.operations.update(jobs.operations)

    @asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        # Background loops; the leader's own (autoscaler, monitoring) join them in `_lead`.
        self._loops: list[asyncio.Future[None]] = []
        # A replay this gateway was running when it died left its temporary endpoint.
        remove_left_behind(self.store, self.control.operations, self.settings.base_url)
        # One gateway leads (runs the controller); others follow (gateway/scaleout.py).
        self._leader_loops: list[asyncio.Future[None]] = []
        self.leadership = Leadership(
            self.settings, self.store, self.routes, self._lead, self._step_down
        )
        self.controller.state.status.fence = self.leadership.fence
        await self.leadership.start()
        # Leases make the async queue safe to work from every gateway.
        await self.async_inference.start()
        capture = capture_writer(self.settings, self.runtime_api.plane)
        for loop in (
            self.stored_alarms.run(self.alarms, lambda: self.routes.leading),
            self._series_upkeep(), self.logs_api.run(), capture.run(),
        ):  # fmt: skip
            self._loops.append(asyncio.ensure_future(loop))
        if isinstance(self.keys.records, KeyTable):
            self._loops.append(asyncio.ensure_future(refresh_loop(self.keys)))
        # Everything imported so far lives as long as the process; freezing it keeps full
        # collections (tens of ms) off the request path.
        gc.collect()
        gc.freeze()
        self._announce()
        try:
            yield
        finally:
            for task in (*self._loops, *self._leader_loops):
                task.cancel()
            await self.serverless.close()
            await self.forwarder.close()
            await self.processing.stop()
            await capture.flush()  # what was captured before the stop is kept
            await self._shutdown()

    def _announce(self) -> None:
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

    async def _shutdown(self) -> None:
        """Stop the workers, then the instances, then close the stores (in that order: a
        worker still running would write to a closed store)."""
        await self.async_inference.stop()
        await self.leadership.stop()
        await self.jobs.stop()
        await self.compilations.stop()
        await self.recommendations.stop()
        await self.controller.stop()
        await self.fleets.close()
        self.store.close()
        # A clean stop keeps every second, and the minute in progress of the rollup tier.
        self.series.flush(final=True)
        self.metric_db.close()
        await self.predictions_api.aclose()
        self.logs_api.close()

    async def _lead(self) -> None:
        """What only the leading gateway runs (all of it, with one gateway)."""
        await self.controller.start()
        await self.jobs.start()
        await self.compilations.start()
        await self.processing.start()
        self._leader_loops.append(asyncio.ensure_future(self.monitoring.run()))
        await self.recommendations.start()
        # Scaling decisions are the leader's alone: two autoscalers would both act.
        self._leader_loops.append(asyncio.ensure_future(self.autoscaler.run()))
        self.serverless.start()  # the leader's fleets: idle serverless instances stop

    async def _step_down(self) -> None:
        """Undo `_lead` when the lead is lost: another gateway may lead already (it starts
        the endpoints' instances again). Transform jobs keep their own claims."""
        for task in self._leader_loops:
            task.cancel()
        await asyncio.gather(*self._leader_loops, return_exceptions=True)
        self._leader_loops = []
        for part in (self.serverless.close, self.recommendations.stop, self.processing.stop,
                     self.compilations.stop, self.controller.stop):  # fmt: skip
            await part()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.guard(scope, receive, send, self.dispatch)

    async def dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/predictions"):
            await self.predictions_api(scope, receive, send)
            return
        if scope["type"] == "http" and scope["path"].startswith("/v2"):
            leader = self._v2_leader(scope)
            if leader is not None:
                await self.forwarder(leader, scope, receive, send)
                return
            await self.v2_api(scope, receive, send)
            return
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            if (path.startswith(CLOUDWATCH_PATH) or path == "/") and wire_of(scope):
                await self.cloudwatch_api(scope, receive, send)
                return
            for name, value in scope["headers"]:
                if name == b"x-amz-target":
                    if value.startswith(CLOUDWATCH_TARGET.encode()):
                        await self.cloudwatch_api(scope, receive, send)
                    elif value.startswith(AUTOSCALING_TARGET_PREFIX.encode()):
                        await self.autoscaling_api(scope, receive, send)
                    elif value.startswith(LOGS_TARGET_PREFIX.encode()):
                        await self.logs_api(scope, receive, send)
                    else:
                        await self.control_api(scope, receive, send)
                    return
            raw = scope.get("raw_path") or scope["path"].encode()
            # `/api/endpoints/...` is modelhost's own API (e.g. promote-shadow).
            if b"/endpoints/" in raw and not raw.startswith(b"/api/"):
                found = parse_invocation_path(raw)
                leader = self.routes.leader_serving(found[0]) if found else None
                if leader is not None:
                    await self.forwarder(leader, scope, receive, send)
                    return
                await self.runtime_api(scope, receive, send)
                return
        await self.other(scope, receive, send)

    def _v2_leader(self, scope: Scope) -> str | None:
        """The leader's URL for a V2 inference of a serverless endpoint on a follower (its
        instances run on the leader, as for InvokeEndpoint)."""
        if scope["method"] != "POST" or self.routes.leading:
            return None  # the leader itself, or no inference
        raw = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        path = parse_model_path("POST", raw.split("?", 1)[0])
        return None if path is None else self.routes.leader_serving(path.endpoint)

    def _alarms_for(self, policy_arn: str) -> list[tuple[str, str]]:
        """CloudWatch alarms whose AlarmActions name a step scaling policy."""
        s = self.settings
        return [
            (name, f"arn:aws:cloudwatch:{s.region}:{s.account_id}:alarm:{name}")
            for name in self.alarms.names()
            if (r := self.alarms.record(name)) is not None
            and policy_arn in r.spec.actions.get("AlarmActions", ())
        ]

    async def _series_upkeep(self) -> None:
        """Flush metric points to metrics.db and sample the instances, off the event loop."""
        interval_s = self.settings.metrics_flush_interval_s
        every = max(int(self.settings.instance_sample_interval_s / interval_s), 1)
        ticks = 0
        while True:
            await asyncio.sleep(interval_s)
            ticks += 1
            try:
                if ticks % every == 0:
                    self.sampler.sample()
                    await self.instance_stats.poll()  # GET /modelhost/stats of each
                await asyncio.to_thread(self.series.flush)
            except Exception:
                log.exception("metric series upkeep failed")

    def _self_url(self) -> tuple[str, str, str]:
        """Where recommendation jobs send their load: this gateway, with the admin key."""
        key_id, secret = self.keys.bootstrap_credentials() or ("modelhost", "modelhost")
        return self.settings.base_url, key_id, secret

    async def ping(self, _request: Request) -> Response:
        return JSONResponse({"status": "Healthy", "version": __version__})

    async def openapi(self, _request: Request) -> Response:
        return JSONResponse(native_openapi())

    async def prometheus(self, _request: Request) -> Response:
        return Response(self.metrics.exposition(), media_type=CONTENT_TYPE)
