"""SageMaker's metric names and dimensions on top of the metric store.

`AWS/SageMaker` carries the invocation metrics per (EndpointName, VariantName) and the
multi-model ones per instance (EndpointName, VariantName, InstanceId, as SageMaker does);
`/aws/sagemaker/Endpoints` carries CPU, memory and disk utilization per instance.
Latency-like metrics keep a quantile sketch so percentiles (p50, p99) can be asked for.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Protocol

from modelhost.telemetry.metric_store import (
    MetricBackend,
    MetricKey,
    MetricStore,
    Point,
    SeriesHandle,
)

SAGEMAKER = "AWS/SageMaker"
ENDPOINTS = "/aws/sagemaker/Endpoints"

# The variant-level invocation metrics, recorded once per invocation.
METRICS = (
    "Invocations",
    "Invocation4XXErrors",
    "Invocation5XXErrors",
    "InvocationModelErrors",
    "InvocationsPerInstance",
    "ModelLatency",
    "OverheadLatency",
)
MULTI_MODEL_METRICS = (
    "ModelLoadingWaitTime",
    "ModelDownloadingTime",
    "ModelLoadingTime",
    "ModelUnloadingTime",
    "ModelCacheHit",
    "LoadedModelCount",
)
# ModelSetupTime: every instance start, launch to first /ping 200 (µs); the utilization:
# a serverless variant's running invocations / MaxConcurrency, at each admission; and
# those its warm instances serve / ProvisionedConcurrency (also sampled while idle).
SERVERLESS_METRICS = (
    "ModelSetupTime",
    "ServerlessConcurrentExecutionsUtilization",
    "ServerlessProvisionedConcurrencyUtilization",
)
# An asynchronous endpoint's queue (jobs/asyncinf/metrics.py records them): the first four
# per endpoint, the rest per variant. Alarms may watch them (scale to zero and back).
ASYNC_ENDPOINT_METRICS = (
    "ApproximateBacklogSize",
    "ApproximateBacklogSizePerInstance",
    "ApproximateAgeOfOldestRequest",
    "HasBacklogWithoutCapacity",
)
ASYNC_VARIANT_METRICS = (
    "InvocationsProcessed",
    "TimeInBacklog",
    "TotalProcessingTime",
    "InvocationFailures",
    "ExpiredRequests",
    "RequestDownloadFailures",
    "ResponseUploadFailures",
    "NotificationFailures",
)
ASYNC_METRICS = (*ASYNC_ENDPOINT_METRICS, *ASYNC_VARIANT_METRICS)
SAGEMAKER_METRICS = (*METRICS, *SERVERLESS_METRICS, *MULTI_MODEL_METRICS, *ASYNC_METRICS)
INSTANCE_METRICS = ("CPUUtilization", "MemoryUtilization", "DiskUtilization")
# Series whose values spread (times, utilization) keep a sketch; counts and 0/1 flags do not.
SKETCHED = frozenset(
    {
        "ModelLatency",
        "OverheadLatency",
        "ModelSetupTime",
        "ServerlessConcurrentExecutionsUtilization",
        "ServerlessProvisionedConcurrencyUtilization",
        "ModelLoadingWaitTime",
        "ModelDownloadingTime",
        "ModelLoadingTime",
        "ModelUnloadingTime",
        "ContainerLatency",
        *INSTANCE_METRICS,
    }
)


def variant_key(metric: str, endpoint: str, variant: str) -> MetricKey:
    return MetricKey.of(SAGEMAKER, metric, EndpointName=endpoint, VariantName=variant)


def instance_key(
    namespace: str, metric: str, endpoint: str, variant: str, instance: str
) -> MetricKey:
    return MetricKey.of(
        namespace, metric, EndpointName=endpoint, VariantName=variant, InstanceId=instance
    )


class VariantWindow:
    """The bound handles of one variant's invocation metrics (bound once, kept)."""

    __slots__ = (
        "errors_4xx",
        "errors_5xx",
        "invocations",
        "model_errors",
        "model_us",
        "overhead_us",
        "per_instance",
    )

    def __init__(self, store: MetricStore, endpoint: str, variant: str) -> None:
        def bind(metric: str) -> SeriesHandle:
            return store.handle(variant_key(metric, endpoint, variant), metric in SKETCHED)

        self.invocations = bind("Invocations")
        self.errors_4xx = bind("Invocation4XXErrors")
        self.errors_5xx = bind("Invocation5XXErrors")
        self.model_errors = bind("InvocationModelErrors")
        self.per_instance = bind("InvocationsPerInstance")
        self.model_us = bind("ModelLatency")
        self.overhead_us = bind("OverheadLatency")

    def record(
        self, second: int, status: int, model_us: float, overhead_us: float, instances: int = 1
    ) -> None:
        """One invocation's values (the model's status decides the error metrics)."""
        self.invocations.add(1.0, second)
        self.errors_4xx.add(1.0 if 400 <= status < 500 else 0.0, second)
        self.errors_5xx.add(1.0 if status >= 500 else 0.0, second)
        self.model_errors.add(1.0 if status >= 400 else 0.0, second)
        self.per_instance.add(1.0 / max(instances, 1), second)
        self.model_us.add(model_us, second)
        self.overhead_us.add(overhead_us, second)


class PeerSeries(Protocol):
    """Other gateways' rollups of the same series (telemetry/shared_rollups.py)."""

    def read(
        self, keys: Iterable[MetricKey], start: int, end: int
    ) -> list[tuple[MetricKey, Point]]: ...

    def keys(self, namespace: str | None, name: str | None) -> list[tuple[MetricKey, bool]]: ...


class SeriesStore(MetricStore):
    """The metric store with SageMaker's variant-level shortcuts; with `peers` (several
    gateways), listings and queries merge the other gateways' rollups in."""

    peers: PeerSeries | None = None

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        backend: MetricBackend | None = None,
        **limits: int,
    ) -> None:
        super().__init__(backend, clock=clock, **limits)
        self._windows: dict[tuple[str, str], VariantWindow] = {}

    def window(self, endpoint: str, variant: str) -> VariantWindow:
        key = (endpoint, variant)
        w = self._windows.get(key)
        if w is None:
            w = self._windows[key] = VariantWindow(self, endpoint, variant)
        return w

    def record(
        self, endpoint: str, variant: str, *, status: int, model_us: float, overhead_us: float
    ) -> None:
        self.window(endpoint, variant).record(int(self.clock()), status, model_us, overhead_us)

    def observe(self, key: MetricKey, value: float) -> None:
        """One value now (multi-model times, gauges, instance samples)."""
        self.handle(key, key.name in SKETCHED).add(value, int(self.clock()))

    # --- several gateways: the others' rollups merged into listings and queries -------

    def keys(
        self,
        namespace: str | None = None,
        name: str | None = None,
        dimensions: Iterable[tuple[str, str | None]] = (),
    ) -> list[MetricKey]:
        wanted = list(dimensions)
        found = super().keys(namespace, name, wanted)
        if self.peers is None:
            return found
        mine = set(found)
        for key, _ in self.peers.keys(namespace, name):
            dims = dict(key.dimensions)
            if key not in mine and all(
                n in dims and (v is None or dims[n] == v) for n, v in wanted
            ):
                mine.add(key)
        return sorted(mine)

    def query(
        self,
        keys: Iterable[MetricKey],
        start: int,
        end: int,
        period_s: int,
        coarse: bool = False,
    ) -> list[Point]:
        keys = list(keys)
        local = super().query(keys, start, end, period_s, coarse)
        if self.peers is None or end <= start:
            return local
        period_s = max(int(period_s), 1)
        out = {p.second: p for p in local}
        for _, p in self.peers.read(keys, start, end):
            slot = start + (p.second - start) // period_s * period_s
            agg = out.get(slot)
            if agg is None:
                agg = out[slot] = Point(slot)
            agg.merge(p)
        return [out[slot] for slot in sorted(out)]

    def totals(self, keys: Iterable[MetricKey], start: int, end: int) -> dict[MetricKey, Point]:
        keys = list(keys)
        out = super().totals(keys, start, end)
        if self.peers is not None:
            for key, p in self.peers.read(keys, start, end):
                out.setdefault(key, Point(start)).merge(p)
        return out
