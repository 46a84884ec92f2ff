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

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

CONTAINER_LABELS = ("EndpointName", "VariantName", "ContainerName")


@dataclass
class ContainerSeries:
    """The bound metric children of one (endpoint, variant, container)."""

    invocations: Counter
    errors_4xx: Counter
    errors_5xx: Counter
    latency_us: Histogram

    def record(self, *, status: int, latency_us: float) -> None:
        """`status` 0 means the container gave no answer (timeout, connection lost)."""
        self.invocations.inc()
        if 400 <= status < 500:
            self.errors_4xx.inc()
        elif status >= 500 or status == 0:
            self.errors_5xx.inc()
        self.latency_us.observe(latency_us)


class ContainerMetrics:
    """Registers the per-container metrics in the gateway's metric registry."""

    def __init__(self, registry: CollectorRegistry, buckets_us: tuple[float, ...]) -> None:
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
            )
            self._bound[key] = s
        return s
