"""The gateway's parts built from settings: the data planes (real-time and async), the
runtime API over them, the metric series store. Kept apart from app.py so the application
reads as wiring, not construction."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine

from modelhost.control.controller import Controller
from modelhost.fleet.dataplane.plane import DataPlane, Limits
from modelhost.fleet.dataplane.ports import ServerlessCapacity
from modelhost.fleet.dataplane.streaming import StreamingPlane
from modelhost.fleet.manager import FleetManager
from modelhost.gateway.async_api import AsyncRuntimeAPI
from modelhost.gateway.runtime_api import RuntimeAPI
from modelhost.gateway.scaleout import GatewayRoutes
from modelhost.gateway.stream_api import StreamAPI
from modelhost.gateway.v2_api import V2API
from modelhost.gateway.v2_generate import V2Generate
from modelhost.jobs.asyncinf.service import AsyncInference
from modelhost.scaling.serverless_pool import ServerlessPool
from modelhost.settings import Settings
from modelhost.store.coordination import is_postgres
from modelhost.store.metadata import MetadataStore
from modelhost.store.outputs import Locations
from modelhost.telemetry.capture import CaptureBuffer, CaptureWriter
from modelhost.telemetry.logs import endpoint_group, log_group_arn, log_stream_arn_for_file
from modelhost.telemetry.metric_db import SqliteBackend
from modelhost.telemetry.metric_store import MetricBackend
from modelhost.telemetry.metrics import InvocationMetrics
from modelhost.telemetry.series import SeriesStore, variant_key
from modelhost.telemetry.shared_rollups import PublishingBackend, SharedRollups, gateway_identity

ASYNC_MAX_TIMEOUT_S = 3600.0  # InvocationTimeoutSeconds' upper bound
ASYNC_MAX_PAYLOAD_BYTES = 1024 * 1024 * 1024


def data_plane(
    settings: Settings,
    routes: GatewayRoutes,
    metrics: InvocationMetrics,
    timeout_s: float | None = None,
    max_payload_bytes: int | None = None,
    capacity: ServerlessCapacity | None = None,
    capture: CaptureBuffer | None = None,
) -> DataPlane:
    """The request path gets the routing snapshots, health sink, random source and
    bandits from the controller, never the controller itself."""

    def log_stream(endpoint: str, log_path: Path | None) -> str:
        """The stream of the instance that answered (its log file names it), else the
        endpoint's group."""
        region, account = settings.region, settings.account_id
        if log_path is not None:
            arn = log_stream_arn_for_file(region, account, settings.logs_dir, log_path)
            if arn is not None:
                return arn
        return log_group_arn(region, account, endpoint_group(endpoint))

    limits = Limits(
        timeout_s=timeout_s or settings.invocation_timeout_s,
        max_payload_bytes=max_payload_bytes or settings.max_payload_bytes,
        model_busy_outstanding=settings.model_busy_outstanding,
        home=settings.home,
    )
    return DataPlane(
        routes=routes,
        health=routes,
        http=routes.controller.client.http,
        rand=routes.controller.rand,
        bandits=routes.controller.bandits.get,
        metrics=metrics,
        limits=limits,
        log_stream=log_stream,
        capacity=capacity,
        capture=capture,
    )


def async_inference(
    settings: Settings, store: MetadataStore, routes: GatewayRoutes, metrics: InvocationMetrics
) -> AsyncInference:
    """Async requests go through the same data plane, with async's limits (up to an hour
    per invocation, answers up to 1 GB); each request's own timeout is the worker's."""
    plane = data_plane(settings, routes, metrics, ASYNC_MAX_TIMEOUT_S, ASYNC_MAX_PAYLOAD_BYTES)
    return AsyncInference(settings, store, plane, metrics.recent)


def runtime_api(
    settings: Settings,
    routes: GatewayRoutes,
    metrics: InvocationMetrics,
    async_inference: AsyncInference,
    serverless: ServerlessCapacity | None = None,
) -> RuntimeAPI:
    # Data capture: a bounded buffer the request path offers to (`capture_writer`).
    plane = data_plane(
        settings,
        routes,
        metrics,
        capture=CaptureBuffer(settings.capture_buffer_records, metrics.capture),
        capacity=serverless,
    )
    return RuntimeAPI(
        plane,
        settings.max_payload_bytes,
        settings.account_id,
        invoke_async=AsyncRuntimeAPI(async_inference, settings).invoke_async,
        is_async=async_inference.is_async,
        stream=StreamAPI(
            StreamingPlane(plane, max_duration_s=settings.stream_max_duration_s),
            settings.max_payload_bytes,
            settings.account_id,
            async_inference.is_async,
        ),
    )


def v2_api(settings: Settings, runtime: RuntimeAPI) -> V2API:
    """The Open Inference Protocol over the runtime's data plane (same limits, same
    refusal of async endpoints)."""
    generate = None
    if isinstance(runtime.stream, StreamAPI):  # the generate extension streams as it does
        generate = V2Generate(runtime.stream.plane, settings.max_payload_bytes, settings.account_id)
    return V2API(
        runtime.plane,
        settings.max_payload_bytes,
        settings.account_id,
        runtime.is_async,
        generate,
    )


def serverless_pool(
    settings: Settings, fleets: FleetManager, controller: Controller, series: SeriesStore
) -> ServerlessPool:
    """The serverless pool (scale from zero, throttling, idle stop) over this gateway's
    running deployments, and ModelSetupTime (µs, as SageMaker reports it) for every
    instance start of any variant."""
    fleets.on_setup = lambda e, v, s: series.observe(variant_key("ModelSetupTime", e, v), s * 1e6)
    return ServerlessPool(
        controller.state.deployments,
        settings.serverless_idle_s,
        lambda e, v, metric, value: series.observe(variant_key(metric, e, v), value),
    )


def series_store(
    settings: Settings, backend: SqliteBackend, engine: Engine | None = None
) -> SeriesStore:
    """The gateway's series in metrics.db; on a shared PostgreSQL (`engine`), its minute
    rollups also go to the database and queries merge the other gateways' in."""
    shared = None
    chosen: MetricBackend = backend
    if engine is not None and is_postgres(settings.metadata_url):
        ident = gateway_identity(settings.home)
        shared = SharedRollups(engine, ident, settings.metrics_rollup_retention_s)
        chosen = PublishingBackend(backend, shared, settings.metrics_rollup_period_s)
    store = SeriesStore(
        backend=chosen,
        fine_retention_s=settings.metrics_fine_retention_s,
        rollup_period_s=settings.metrics_rollup_period_s,
        rollup_retention_s=settings.metrics_rollup_retention_s,
        max_series=settings.metrics_max_series,
    )
    store.peers = shared
    return store


def capture_writer(settings: Settings, plane: DataPlane) -> CaptureWriter:
    """Writes what the data plane's capture buffer holds, in batches, in the background."""
    assert plane.capture is not None
    locations = Locations(settings.s3_endpoint_url)
    return CaptureWriter(
        plane.capture,
        lambda url, data: locations.write(url, data, "DataCaptureConfig"),
        settings.capture_flush_interval_s,
        plane.metrics.capture,
    )
