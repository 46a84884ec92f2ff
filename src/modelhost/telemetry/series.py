"""Recent metric values per (endpoint, variant), kept in per-second buckets for alarms.

Prometheus keeps the long history; alarms need only the last few periods, in-process and
without a scrape in between, so each variant keeps a short ring of one-second buckets
(count, sum, min, max per metric). Recording is a handful of additions per request.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

METRICS = (
    "Invocations",
    "Invocation4XXErrors",
    "Invocation5XXErrors",
    "ModelLatency",
    "OverheadLatency",
)
RETENTION_S = 3 * 3600


@dataclass
class Bucket:
    """One second of one metric."""

    second: int
    count: int = 0
    total: float = 0.0
    minimum: float = float("inf")
    maximum: float = float("-inf")

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        self.minimum = min(self.minimum, value)
        self.maximum = max(self.maximum, value)


@dataclass
class Aggregate:
    """A metric over a period, with CloudWatch's statistics."""

    count: int = 0
    total: float = 0.0
    minimum: float = float("inf")
    maximum: float = float("-inf")

    def merge(self, bucket: Bucket) -> None:
        self.count += bucket.count
        self.total += bucket.total
        self.minimum = min(self.minimum, bucket.minimum)
        self.maximum = max(self.maximum, bucket.maximum)

    def statistic(self, name: str) -> float | None:
        """Average, Sum, SampleCount, Minimum or Maximum; None when there is no data."""
        if self.count == 0:
            return None
        if name == "Sum":
            return self.total
        if name == "SampleCount":
            return float(self.count)
        if name == "Minimum":
            return self.minimum
        if name == "Maximum":
            return self.maximum
        return self.total / self.count


@dataclass
class VariantWindow:
    """The recent buckets of every metric of one variant."""

    buckets: dict[str, deque[Bucket]] = field(default_factory=lambda: {m: deque() for m in METRICS})

    def add(self, metric: str, second: int, value: float) -> None:
        ring = self.buckets[metric]
        if not ring or ring[-1].second != second:
            ring.append(Bucket(second))
            while ring and ring[0].second < second - RETENTION_S:
                ring.popleft()
        ring[-1].add(value)

    def record(self, second: int, status: int, model_us: float, overhead_us: float) -> None:
        """One invocation's values (the model's status decides the error metrics)."""
        self.add("Invocations", second, 1.0)
        self.add("Invocation4XXErrors", second, 1.0 if 400 <= status < 500 else 0.0)
        self.add("Invocation5XXErrors", second, 1.0 if status >= 500 else 0.0)
        self.add("ModelLatency", second, model_us)
        self.add("OverheadLatency", second, overhead_us)

    def aggregate(self, metric: str, start: int, end: int) -> Aggregate:
        """Buckets with start <= second < end."""
        agg = Aggregate()
        for bucket in reversed(self.buckets[metric]):
            if bucket.second < start:
                break
            if bucket.second < end:
                agg.merge(bucket)
        return agg


class SeriesStore:
    """All variants' windows; `clock` is injectable for tests."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._windows: dict[tuple[str, str], VariantWindow] = {}

    def window(self, endpoint: str, variant: str) -> VariantWindow:
        key = (endpoint, variant)
        w = self._windows.get(key)
        if w is None:
            w = self._windows[key] = VariantWindow()
        return w

    def record(
        self, endpoint: str, variant: str, *, status: int, model_us: float, overhead_us: float
    ) -> None:
        second = int(self.clock())
        w = self.window(endpoint, variant)
        w.add("Invocations", second, 1.0)
        w.add("Invocation4XXErrors", second, 1.0 if 400 <= status < 500 else 0.0)
        w.add("Invocation5XXErrors", second, 1.0 if status >= 500 else 0.0)
        w.add("ModelLatency", second, model_us)
        w.add("OverheadLatency", second, overhead_us)

    def aggregate(
        self, metric: str, endpoint: str, variant: str | None, start: int, end: int
    ) -> Aggregate:
        """One variant, or (variant None) every variant of the endpoint together."""
        agg = Aggregate()
        windows: Iterable[VariantWindow]
        if variant is not None:
            found = self._windows.get((endpoint, variant))
            windows = [found] if found is not None else []
        else:
            windows = [w for (e, _), w in self._windows.items() if e == endpoint]
        for w in windows:
            part = w.aggregate(metric, start, end)
            agg.count += part.count
            agg.total += part.total
            agg.minimum = min(agg.minimum, part.minimum)
            agg.maximum = max(agg.maximum, part.maximum)
        return agg
