"""The per-variant invocation metrics as plain counters, exposed to Prometheus at scrape time.

Why not `prometheus_client.Counter`/`Histogram` children: each `inc`/`observe` takes a
lock and walks the buckets in Python, about 3 µs of the gateway's ~20 µs per request
(measured with an instant fake instance, docs/performance.md). These are updated only on
the event loop, so plain attribute increments are enough, and `VariantCollector` turns
them into the same families (`Invocations_total`, `ModelLatency_bucket`, ...) when
`/metrics` is read.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

COUNTERS = (
    ("Invocations", "InvokeEndpoint requests."),
    ("Invocation4XXErrors", "Invocations the model answered with a 4xx status."),
    ("Invocation5XXErrors", "Invocations the model answered with a 5xx status."),
    ("InvocationsPerInstance", "Invocations divided by the variant's instance count."),
)
HISTOGRAMS = (
    ("ModelLatency", "Time the instance took to answer, in microseconds."),
    ("OverheadLatency", "Gateway time outside the instance, in microseconds."),
)


class VariantCounts:
    """One (endpoint, variant)'s counters and latency histograms (non-cumulative bucket
    counts; the last bucket is +Inf)."""

    __slots__ = (
        "created_s",
        "errors_4xx",
        "errors_5xx",
        "invocations",
        "model_buckets",
        "model_sum_us",
        "overhead_buckets",
        "overhead_sum_us",
        "per_instance",
    )

    def __init__(self, bucket_count: int) -> None:
        self.created_s = time.time()
        self.invocations = 0
        self.errors_4xx = 0
        self.errors_5xx = 0
        self.per_instance = 0.0
        self.model_buckets = [0] * bucket_count
        self.model_sum_us = 0.0
        self.overhead_buckets = [0] * bucket_count
        self.overhead_sum_us = 0.0


class VariantCollector(Collector):
    """Exposes every variant's `VariantCounts` with SageMaker's metric names."""

    def __init__(self, bounds_us: Sequence[float], labels: Sequence[str]) -> None:
        self.bounds = (*(float(b) for b in bounds_us), float("inf"))
        self.les = [floatToGoString(b) for b in self.bounds]
        self.labels = list(labels)
        self.variants: dict[tuple[str, ...], VariantCounts] = {}

    def counts(self, key: tuple[str, ...]) -> VariantCounts:
        counts = self.variants.get(key)
        if counts is None:
            counts = self.variants[key] = VariantCounts(len(self.bounds))
        return counts

    def bucket(self, value: float) -> int:
        """The index of the bucket `value` falls in (the first bound >= value)."""
        return bisect_left(self.bounds, value)

    def collect(self) -> Iterator[Metric]:
        items = list(self.variants.items())
        values = (
            lambda c: c.invocations,
            lambda c: c.errors_4xx,
            lambda c: c.errors_5xx,
            lambda c: c.per_instance,
        )
        for (name, documentation), value in zip(COUNTERS, values, strict=True):
            counter = CounterMetricFamily(name, documentation, labels=self.labels)
            for key, c in items:
                counter.add_metric(list(key), float(value(c)), created=c.created_s)
            yield counter
        for name, documentation in HISTOGRAMS:
            histogram = HistogramMetricFamily(name, documentation, labels=self.labels)
            model = name == "ModelLatency"
            for key, c in items:
                buckets = c.model_buckets if model else c.overhead_buckets
                total = c.model_sum_us if model else c.overhead_sum_us
                cumulative, running = [], 0
                for le, n in zip(self.les, buckets, strict=True):
                    running += n
                    cumulative.append((le, float(running)))
                histogram.add_metric(list(key), cumulative, total)
            yield histogram

    def describe(self) -> Iterator[Metric]:
        # Names only (what the registry checks for duplicates), without reading counts.
        for name, documentation in COUNTERS:
            yield CounterMetricFamily(name, documentation, labels=self.labels)
        for name, documentation in HISTOGRAMS:
            yield HistogramMetricFamily(name, documentation, labels=self.labels)
