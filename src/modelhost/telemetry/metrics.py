"""Invocation metrics with SageMaker's names and units, for Prometheus and the series store.

Names follow CloudWatch's `AWS/SageMaker` namespace (Invocations, Invocation4XXErrors,
Invocation5XXErrors, InvocationsPerInstance, ModelLatency, OverheadLatency) with the
dimensions `EndpointName` and `VariantName` as labels. Latencies are histograms in
microseconds, as SageMaker reports them. Counters get Prometheus' `_total` suffix.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from modelhost.telemetry.capture import CaptureMetrics
from modelhost.telemetry.container_metrics import ContainerMetrics
from modelhost.telemetry.instance_stats_metrics import InstanceStatsCollector
from modelhost.telemetry.model_metrics import ModelMetrics
from modelhost.telemetry.routing_metrics import RoutingCollector
from modelhost.telemetry.series import SeriesStore, VariantWindow
from modelhost.telemetry.variant_counts import VariantCollector, VariantCounts

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


class VariantSeries:
    """One (endpoint, variant)'s metrics, bound once: `record` is a few additions on
    plain counters (`VariantCounts`) and the series store's window."""

    __slots__ = ("bucket", "counts", "window")

    def __init__(
        self, counts: VariantCounts, bucket: Callable[[float], int], window: VariantWindow
    ) -> None:
        self.counts = counts
        self.bucket = bucket
        self.window = window

    def record(self, *, status: int, instances: int, model_us: float, total_us: float) -> None:
        overhead_us = total_us - model_us
        if overhead_us < 0.0:
            overhead_us = 0.0
        self.window.record(int(time.time()), status, model_us, overhead_us, instances)
        c = self.counts
        c.invocations += 1
        if status >= 400:
            if status < 500:
                c.errors_4xx += 1
            else:
                c.errors_5xx += 1
        c.per_instance += 1.0 / instances if instances > 1 else 1.0
        c.model_buckets[self.bucket(model_us)] += 1
        c.model_sum_us += model_us
        c.overhead_buckets[self.bucket(overhead_us)] += 1
        c.overhead_sum_us += overhead_us


class InvocationMetrics:
    """All invocation metrics of one gateway, in their own registry, and fed to the
    CloudWatch-shaped series store `recent` (in memory unless a store is passed)."""

    def __init__(self, store: SeriesStore | None = None) -> None:
        # The series store behind the CloudWatch API and the alarms.
        self.recent = store if store is not None else SeriesStore()
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # Invocations, the 4XX/5XX errors, InvocationsPerInstance, ModelLatency and
        # OverheadLatency per variant, read at scrape time (see `variant_counts`).
        self._variants = VariantCollector(LATENCY_BUCKETS_US, LABELS)
        r.register(self._variants)
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
        # What modelhost's instances report: batching counters, compiled-tier states.
        self.instance_stats = InstanceStatsCollector()
        r.register(self.instance_stats)

    def series(self, endpoint: str, variant: str) -> VariantSeries:
        key = (endpoint, variant)
        s = self._bound.get(key)
        if s is None:
            s = VariantSeries(
                self._variants.counts(key), self._variants.bucket, self.recent.window(*key)
            )
            self._bound[key] = s
        return s

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
