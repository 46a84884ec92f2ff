"""Invocation metrics with SageMaker's names and units, for Prometheus and the series store.

Names follow CloudWatch's `AWS/SageMaker` namespace (Invocations, Invocation4XXErrors,
Invocation5XXErrors, InvocationsPerInstance, ModelLatency, OverheadLatency) with the
dimensions `EndpointName` and `VariantName` as labels. Latencies are histograms in
microseconds, as SageMaker reports them. Counters get Prometheus' `_total` suffix.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from modelhost.telemetry.capture import CaptureMetrics
from modelhost.telemetry.container_metrics import ContainerMetrics
from modelhost.telemetry.model_metrics import ModelMetrics
from modelhost.telemetry.routing_metrics import RoutingCollector
from modelhost.telemetry.series import SeriesStore, VariantWindow

# 5 µs … 60 s: the gateway's own overhead is tens of µs, one-row predicts sit in the
# low hundreds, timeouts in the top bucket.
LATENCY_BUCKETS_US = (
    5,
    10,
    20,
    30,
    50,
    100,
    200,
    300,
    500,
    750,
    1_000,
    1_500,
    2_000,
    3_000,
    5_000,
    7_500,
    10_000,
    20_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    10_000_000,
    60_000_000,
)
LABELS = ("EndpointName", "VariantName")

CONTENT_TYPE = CONTENT_TYPE_LATEST


@dataclass
class VariantSeries:
    """The bound metric children of one (endpoint, variant); binding once keeps the
    per-request cost to a few increments."""

    invocations: Counter
    errors_4xx: Counter
    errors_5xx: Counter
    per_instance: Counter
    model_latency_us: Histogram
    overhead_latency_us: Histogram
    window: VariantWindow

    def record(self, *, status: int, instances: int, model_us: float, total_us: float) -> None:
        overhead_us = max(total_us - model_us, 0.0)
        self.window.record(int(time.time()), status, model_us, overhead_us, instances)
        self.invocations.inc()
        if 400 <= status < 500:
            self.errors_4xx.inc()
        elif status >= 500:
            self.errors_5xx.inc()
        self.per_instance.inc(1.0 / max(instances, 1))
        self.model_latency_us.observe(model_us)
        self.overhead_latency_us.observe(overhead_us)


class InvocationMetrics:
    """All invocation metrics of one gateway, in their own registry, and fed to the
    CloudWatch-shaped series store `recent` (in memory unless a store is passed)."""

    def __init__(self, store: SeriesStore | None = None) -> None:
        # The series store behind the CloudWatch API and the alarms.
        self.recent = store if store is not None else SeriesStore()
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._invocations = Counter("Invocations", "InvokeEndpoint requests.", LABELS, registry=r)
        self._errors_4xx = Counter(
            "Invocation4XXErrors",
            "Invocations the model answered with a 4xx status.",
            LABELS,
            registry=r,
        )
        self._errors_5xx = Counter(
            "Invocation5XXErrors",
            "Invocations the model answered with a 5xx status.",
            LABELS,
            registry=r,
        )
        self._per_instance = Counter(
            "InvocationsPerInstance",
            "Invocations divided by the variant's instance count.",
            LABELS,
            registry=r,
        )
        self._model_latency = Histogram(
            "ModelLatency",
            "Time the instance took to answer, in microseconds.",
            LABELS,
            buckets=LATENCY_BUCKETS_US,
            registry=r,
        )
        self._overhead_latency = Histogram(
            "OverheadLatency",
            "Gateway time outside the instance, in microseconds.",
            LABELS,
            buckets=LATENCY_BUCKETS_US,
            registry=r,
        )
        # Traffic split and bandit rewards, read from their owners at scrape time.
        self.routing = RoutingCollector()
        r.register(self.routing)
        self._bound: dict[tuple[str, str], VariantSeries] = {}
        # Multi-container endpoints and pipelines: per-container series.
        self.containers = ContainerMetrics(r, LATENCY_BUCKETS_US, self.recent)
        # Multi-model endpoints: loading, cache hits, loaded models (SageMaker's names).
        self.models = ModelMetrics(r, self.recent)
        # Data capture: records written and dropped.
        self.capture = CaptureMetrics(r)

    def series(self, endpoint: str, variant: str) -> VariantSeries:
        key = (endpoint, variant)
        s = self._bound.get(key)
        if s is None:
            s = VariantSeries(
                self._invocations.labels(*key),
                self._errors_4xx.labels(*key),
                self._errors_5xx.labels(*key),
                self._per_instance.labels(*key),
                self._model_latency.labels(*key),
                self._overhead_latency.labels(*key),
                self.recent.window(*key),
            )
            self._bound[key] = s
        return s

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
