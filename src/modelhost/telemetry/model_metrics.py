"""Multi-model endpoint metrics with SageMaker's names (CloudWatch `AWS/SageMaker`).

Times are histograms in microseconds, as SageMaker reports them, labelled by endpoint,
variant and instance:

- `ModelLoadingWaitTime`: how long an invocation waited for its model to be downloaded
  and loaded (only invocations that waited);
- `ModelDownloadingTime`: fetching the artifact into the local disk cache (a reload after
  eviction finds it there and does not download);
- `ModelLoadingTime` / `ModelUnloadingTime`: the instance's load and unload calls;
- `ModelCacheHit`: a summary observed once per invocation, 1 when the model was already
  loaded; `ModelCacheHit_sum / ModelCacheHit_count` is the hit ratio (CloudWatch's Average);
- `LoadedModelCount`: models an instance holds;
- `TargetModelInvocations`: invocations per TargetModel (SageMaker has no per-model
  metric; this is modelhost's).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary

from modelhost.telemetry.metric_store import SeriesHandle
from modelhost.telemetry.series import SAGEMAKER, SKETCHED, SeriesStore, instance_key

INSTANCE_LABELS = ("EndpointName", "VariantName", "InstanceId")
MODEL_LABELS = ("EndpointName", "VariantName", "TargetModel")

# 10 µs … 60 s: a cache hit waits nothing, a cold load from the disk cache takes
# milliseconds, a download from S3 seconds.
TIME_BUCKETS_US = (
    10,
    100,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    10_000_000,
    60_000_000,
)


class FedChild:
    """A bound Prometheus child that also feeds the value to its series in the store."""

    __slots__ = ("_child", "_clock", "_handle")

    def __init__(self, child: Any, handle: SeriesHandle, store: SeriesStore) -> None:
        self._child = child
        self._handle = handle
        self._clock = store.clock

    def observe(self, value: float) -> None:
        self._child.observe(value)
        self._handle.add(value, int(self._clock()))

    def set(self, value: float) -> None:
        self._child.set(value)
        self._handle.add(value, int(self._clock()))


class FedFamily:
    """A per-instance Prometheus family whose `labels(endpoint, variant, instance)` children
    also record into the CloudWatch-shaped series of the same name."""

    def __init__(self, family: Any, name: str, store: SeriesStore) -> None:
        self.family = family
        self.name = name
        self.store = store
        self._children: dict[tuple[str, ...], FedChild] = {}

    def labels(self, *values: str) -> FedChild:
        child = self._children.get(values)
        if child is None:
            endpoint, variant, instance = values
            key = instance_key(SAGEMAKER, self.name, endpoint, variant, instance)
            handle = self.store.handle(key, self.name in SKETCHED)
            child = self._children[values] = FedChild(
                self.family.labels(*values), handle, self.store
            )
        return child


class ModelMetrics:
    """The multi-model metric families, registered in the gateway's registry and fed to
    the series store (dimensions EndpointName, VariantName, InstanceId)."""

    def __init__(self, registry: CollectorRegistry, store: SeriesStore | None = None) -> None:
        fed_store = store if store is not None else SeriesStore()

        def histogram(name: str, doc: str) -> Any:
            family = Histogram(
                name, doc, INSTANCE_LABELS, buckets=TIME_BUCKETS_US, registry=registry
            )
            return FedFamily(family, name, fed_store)

        self.loading_wait_us = histogram(
            "ModelLoadingWaitTime",
            "Time an invocation waited for its target model to download and load, in µs.",
        )
        self.downloading_us = histogram(
            "ModelDownloadingTime", "Time to fetch a model artifact into the disk cache, in µs."
        )
        self.loading_us = histogram(
            "ModelLoadingTime", "Time an instance took to load a model, in µs."
        )
        self.unloading_us = histogram(
            "ModelUnloadingTime", "Time an instance took to unload a model, in µs."
        )
        self.cache_hit = FedFamily(
            Summary(
                "ModelCacheHit",
                "1 per invocation whose model was loaded already, else 0 "
                "(the mean is the hit ratio).",
                INSTANCE_LABELS,
                registry=registry,
            ),
            "ModelCacheHit",
            fed_store,
        )
        self.loaded_count = FedFamily(
            Gauge(
                "LoadedModelCount",
                "Models loaded on an instance.",
                INSTANCE_LABELS,
                registry=registry,
            ),
            "LoadedModelCount",
            fed_store,
        )
        self.invocations = Counter(
            "TargetModelInvocations",
            "Invocations of a multi-model endpoint per TargetModel.",
            MODEL_LABELS,
            registry=registry,
        )
