"""Async inference metrics in the series store, named and dimensioned as SageMaker's.

Per endpoint (EndpointName), sampled every pass: ApproximateBacklogSize,
ApproximateBacklogSizePerInstance, ApproximateAgeOfOldestRequest,
HasBacklogWithoutCapacity (the scale-from-zero signal). Per variant (EndpointName,
VariantName), when a request finishes: InvocationsProcessed, TimeInBacklog and
TotalProcessingTime (ms), and the failure counts (InvocationFailures, ExpiredRequests,
RequestDownloadFailures, ResponseUploadFailures, NotificationFailures).
"""

from __future__ import annotations

from modelhost.jobs.asyncinf.lease import backlog_gauges
from modelhost.store.queue import Backlog, QueuedRequest
from modelhost.telemetry.metric_store import MetricKey, MetricStore
from modelhost.telemetry.series import SAGEMAKER


class AsyncMetrics:
    """Records the async metrics into the gateway's series store."""

    def __init__(self, series: MetricStore) -> None:
        self.series = series

    def _key(self, metric: str, endpoint: str, variant: str | None = None) -> MetricKey:
        if variant is None:
            return MetricKey.of(SAGEMAKER, metric, EndpointName=endpoint)
        return MetricKey.of(SAGEMAKER, metric, EndpointName=endpoint, VariantName=variant)

    def _add(self, key: MetricKey, value: float, sketched: bool = False) -> None:
        self.series.handle(key, sketched).add(value, int(self.series.clock()))

    def backlog(self, endpoint: str, backlog: Backlog | None, instances: int, now_s: float) -> None:
        for metric, value in backlog_gauges(backlog, instances, now_s).items():
            self._add(self._key(metric, endpoint), value)

    def processed(
        self, request: QueuedRequest, variant: str, now_s: float, invoke_s: float
    ) -> None:
        self._add(self._key("InvocationsProcessed", request.endpoint, variant), 1.0)
        waited_ms = max(now_s - request.received_s - invoke_s, 0.0) * 1000
        self._add(self._key("TimeInBacklog", request.endpoint, variant), waited_ms, True)
        total_ms = max(now_s - request.received_s, 0.0) * 1000
        self._add(self._key("TotalProcessingTime", request.endpoint, variant), total_ms, True)

    def count(self, endpoint: str, variant: str, metric: str) -> None:
        self._add(self._key(metric, endpoint, variant), 1.0)
