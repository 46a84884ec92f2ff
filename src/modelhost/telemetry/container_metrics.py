"""Per-container metrics of multi-container endpoints and inference pipelines.

SageMaker reports these in `AWS/SageMaker` with the dimensions `EndpointName`,
`VariantName`, `ContainerName` (the container's host name). `ContainerLatency` keeps its
SageMaker name. The per-container Invocations and error counts share their CloudWatch
names with the variant-level metrics, which a Prometheus registry cannot hold twice
with different labels, so they are exported with a `Container` prefix
(`ContainerInvocations`, `ContainerInvocation4XXErrors`, `ContainerInvocation5XXErrors`).
The variant-level metrics (Invocations, ModelLatency, OverheadLatency, ...) are recorded
as for any endpoint; for a pipeline ModelLatency spans all of its containers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

from modelhost.telemetry.metric_store import MetricKey, SeriesHandle
from modelhost.telemetry.series import SAGEMAKER, SeriesStore

CONTAINER_LABELS = ("EndpointName", "VariantName", "ContainerName")


@dataclass
class ContainerSeries:
    """The bound metric children of one (endpoint, variant, container)."""

    invocations: Counter
    errors_4xx: Counter
    errors_5xx: Counter
    latency_us: Histogram
    # The same values in the series store, under CloudWatch's names (Invocations,
    # Invocation4XXErrors, Invocation5XXErrors, ContainerLatency with ContainerName).
    handles: tuple[SeriesHandle, SeriesHandle, SeriesHandle, SeriesHandle]

    def record(self, *, status: int, latency_us: float) -> None:
        """`status` 0 means the container gave no answer (timeout, connection lost)."""
        self.invocations.inc()
        is_4xx = 400 <= status < 500
        is_5xx = status >= 500 or status == 0
        if is_4xx:
            self.errors_4xx.inc()
        elif is_5xx:
            self.errors_5xx.inc()
        self.latency_us.observe(latency_us)
        second = int(time.time())
        calls, e4, e5, latency = self.handles
        calls.add(1.0, second)
        e4.add(1.0 if is_4xx else 0.0, second)
        e5.add(1.0 if is_5xx else 0.0, second)
        latency.add(latency_us, second)


class ContainerMetrics:
    """Registers the per-container metrics in the gateway's metric registry."""

    def __init__(
        self,
        registry: CollectorRegistry,
        buckets_us: tuple[float, ...],
        store: SeriesStore | None = None,
    ) -> None:
        self.store = store if store is not None else SeriesStore()
        r = registry
        self._invocations = Counter(
            "ContainerInvocations",
            "Requests sent to one container of a multi-container endpoint or pipeline.",
            CONTAINER_LABELS,
            registry=r,
        )
        self._errors_4xx = Counter(
            "ContainerInvocation4XXErrors",
            "Requests one container answered with a 4xx status.",
            CONTAINER_LABELS,
            registry=r,
        )
        self._errors_5xx = Counter(
            "ContainerInvocation5XXErrors",
            "Requests one container answered with a 5xx status (or not at all).",
            CONTAINER_LABELS,
            registry=r,
        )
        self._latency = Histogram(
            "ContainerLatency",
            "Time one container took to answer, as seen by the gateway, in microseconds.",
            CONTAINER_LABELS,
            buckets=buckets_us,
            registry=r,
        )
        self._bound: dict[tuple[str, str, str], ContainerSeries] = {}

    def series(self, endpoint: str, variant: str, container: str) -> ContainerSeries:
        key = (endpoint, variant, container)
        s = self._bound.get(key)
        if s is None:
            s = ContainerSeries(
                self._invocations.labels(*key),
                self._errors_4xx.labels(*key),
                self._errors_5xx.labels(*key),
                self._latency.labels(*key),
                self._handles(endpoint, variant, container),
            )
            self._bound[key] = s
        return s

    def _handles(
        self, endpoint: str, variant: str, container: str
    ) -> tuple[SeriesHandle, SeriesHandle, SeriesHandle, SeriesHandle]:
        def bind(metric: str) -> SeriesHandle:
            key = MetricKey.of(
                SAGEMAKER,
                metric,
                EndpointName=endpoint,
                VariantName=variant,
                ContainerName=container,
            )
            return self.store.handle(key, metric == "ContainerLatency")

        return (
            bind("Invocations"),
            bind("Invocation4XXErrors"),
            bind("Invocation5XXErrors"),
            bind("ContainerLatency"),
        )
