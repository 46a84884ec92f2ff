"""CloudWatch-shaped metric series: 1-second points with a 60-second rollup, kept by tier.

A series is one `MetricKey` (namespace, metric name, dimensions). Recording adds to the
current second's `Point` (count, sum, min, max and, for latency-like series, a quantile
`Sketch`) held by the series' `SeriesHandle`; the hot path is a few additions. `flush`
moves the completed seconds to a `MetricBackend` (SQLite in the gateway, a list in tests)
and folds them into per-minute rollups written when each minute completes, then expires
points past their tier's retention. Queries merge what is flushed with what is not.

Memory holds only the unflushed seconds (one flush interval), the current minute's
rollup per series, and the series registry, which is capped at `max_series` (series past
the cap are counted in `dropped` and not kept), so it stays bounded whatever the number
of endpoints, variants, instances and models. A crash loses the seconds since the last
flush and, in the 60-second tier, the minute in progress; a clean stop flushes both.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from modelhost.telemetry.sketch import Sketch

FINE_S = 1


@dataclass(frozen=True, order=True)
class MetricKey:
    """One series: CloudWatch's (Namespace, MetricName, Dimensions); dimensions sorted."""

    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, namespace: str, name: str, **dimensions: str) -> MetricKey:
        return cls(namespace, name, tuple(sorted(dimensions.items())))

    def dimension(self, name: str) -> str | None:
        return dict(self.dimensions).get(name)


class Point:
    """The values of one series in one interval (a second, a minute or a query period)."""

    __slots__ = ("count", "maximum", "minimum", "second", "sketch", "total")

    def __init__(self, second: int, sketched: bool = False) -> None:
        self.second = second
        self.count = 0
        self.total = 0.0
        self.minimum = float("inf")
        self.maximum = float("-inf")
        self.sketch: Sketch | None = Sketch() if sketched else None

    def add(self, value: float, count: int = 1) -> None:
        self.count += count
        self.total += value * count
        if value < self.minimum:
            self.minimum = value
        if value > self.maximum:
            self.maximum = value
        if self.sketch is not None:
            self.sketch.add(value, count)

    def merge(self, other: Point) -> None:
        self.count += other.count
        self.total += other.total
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)
        if other.sketch is not None:
            if self.sketch is None:
                self.sketch = Sketch()
            self.sketch.merge(other.sketch)

    def statistic(self, name: str) -> float | None:
        """SampleCount, Sum, Average, Minimum, Maximum or a percentile `pNN[.N]`; None
        without data (or a percentile of a series kept without a sketch)."""
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
        if name == "Average":
            return self.total / self.count
        q = percentile(name)
        if q is None or self.sketch is None:
            return None
        return self.sketch.quantile(q)


def percentile(name: str) -> float | None:
    """0.99 for "p99", 0.999 for "p99.9"; None when `name` is not a percentile."""
    if len(name) < 2 or name[0] != "p":
        return None
    try:
        value = float(name[1:])
    except ValueError:
        return None
    return value / 100.0 if 0.0 <= value <= 100.0 else None


class SeriesHandle:
    """One series' recording side; `add` is the hot path (called on the event loop)."""

    __slots__ = ("current", "key", "points", "sid", "sketched")

    def __init__(self, key: MetricKey, sid: int, sketched: bool) -> None:
        self.key = key
        self.sid = sid
        self.sketched = sketched
        self.points: deque[Point] = deque()
        self.current: Point | None = None

    def add(self, value: float, second: int, count: int = 1) -> None:
        p = self.current
        if p is None or p.second != second:
            p = self.current = Point(second, self.sketched)
            self.points.append(p)
        p.add(value, count)


class MetricBackend(Protocol):
    """Where flushed points live. `resolution_s` is 1 (fine tier) or the rollup period;
    several rows may share (sid, resolution, second): readers merge them."""

    def load_series(self) -> list[tuple[int, MetricKey, bool]]: ...

    def register(self, sid: int, key: MetricKey, sketched: bool) -> None: ...

    def write(self, resolution_s: int, rows: list[tuple[int, Point]]) -> None: ...

    def read(
        self, sids: list[int], resolution_s: int, start: int, end: int
    ) -> Iterable[tuple[int, Point]]: ...

    def expire(self, resolution_s: int, before: int) -> None: ...


class MemoryBackend:
    """A backend in a list, for tests and for running without a state directory."""

    def __init__(self) -> None:
        self.series: list[tuple[int, MetricKey, bool]] = []
        self.rows: dict[int, list[tuple[int, Point]]] = {}

    def load_series(self) -> list[tuple[int, MetricKey, bool]]:
        return list(self.series)

    def register(self, sid: int, key: MetricKey, sketched: bool) -> None:
        self.series.append((sid, key, sketched))

    def write(self, resolution_s: int, rows: list[tuple[int, Point]]) -> None:
        self.rows.setdefault(resolution_s, []).extend(rows)

    def read(
        self, sids: list[int], resolution_s: int, start: int, end: int
    ) -> Iterable[tuple[int, Point]]:
        wanted = set(sids)
        return [
            (sid, p)
            for sid, p in self.rows.get(resolution_s, [])
            if sid in wanted and start <= p.second < end
        ]

    def expire(self, resolution_s: int, before: int) -> None:
        rows = self.rows.get(resolution_s, [])
        self.rows[resolution_s] = [(s, p) for s, p in rows if p.second >= before]


class _Discard(SeriesHandle):
    """Handed out past `max_series`: records nothing."""

    def add(self, value: float, second: int, count: int = 1) -> None:
        return None


class MetricStore:
    """All series of one gateway; see the module docstring. `clock` is injectable."""

    def __init__(
        self,
        backend: MetricBackend | None = None,
        *,
        fine_retention_s: int = 3 * 3600,
        rollup_period_s: int = 60,
        rollup_retention_s: int = 15 * 86400,
        max_series: int = 50_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.backend: MetricBackend = backend if backend is not None else MemoryBackend()
        self.fine_retention_s = fine_retention_s
        self.rollup_period_s = rollup_period_s
        self.rollup_retention_s = rollup_retention_s
        self.max_series = max_series
        self.clock = clock
        self.dropped = 0
        self._handles: dict[MetricKey, SeriesHandle] = {}
        self._lock = threading.Lock()  # flush vs. queries; never taken by `add`
        self._minutes: dict[tuple[int, int], Point] = {}
        self._expired_at = 0
        self._late: deque[tuple[int, Point]] = deque()
        self._unregistered: deque[SeriesHandle] = deque()
        for sid, key, sketched in self.backend.load_series():
            self._handles[key] = SeriesHandle(key, sid, sketched)

    # --- recording -------------------------------------------------------------------

    def handle(self, key: MetricKey, sketched: bool = False) -> SeriesHandle:
        """The series' recording handle, created on first use (bind it once, keep it)."""
        found = self._handles.get(key)
        if found is not None:
            return found
        if len(self._handles) >= self.max_series:
            self.dropped += 1
            return _Discard(key, -1, False)
        sid = len(self._handles) + 1
        found = self._handles[key] = SeriesHandle(key, sid, sketched)
        # Written by the next flush, on the flush thread: the request path never waits on
        # the database.
        self._unregistered.append(found)
        return found

    def put(self, key: MetricKey, value: float, timestamp_s: float | None = None) -> None:
        """One value at a time (PutMetricData); user series keep a sketch."""
        now = int(self.clock())
        second = now if timestamp_s is None else int(timestamp_s)
        h = self.handle(key, sketched=True)
        if second == now or h.sid < 0:
            h.add(value, second)
            return
        # Another second than now: a row of its own, so the current point stays current.
        p = Point(second, True)
        p.add(value)
        self._late.append((h.sid, p))

    @property
    def series_count(self) -> int:
        return len(self._handles)

    def pending_points(self) -> int:
        """Unflushed points in memory (the memory-bound test reads it)."""
        points = sum(len(h.points) for h in self._handles.values())
        return points + len(self._minutes) + len(self._late)

    # --- listing and queries ---------------------------------------------------------

    def keys(
        self,
        namespace: str | None = None,
        name: str | None = None,
        dimensions: Iterable[tuple[str, str | None]] = (),
    ) -> list[MetricKey]:
        """Series matching the filters; a dimension filter with value None matches any value."""
        wanted = list(dimensions)
        out = []
        for key in list(self._handles):
            if namespace is not None and key.namespace != namespace:
                continue
            if name is not None and key.name != name:
                continue
            dims = dict(key.dimensions)
            if all(n in dims and (v is None or dims[n] == v) for n, v in wanted):
                out.append(key)
        return sorted(out)

    def query(
        self,
        keys: Iterable[MetricKey],
        start: int,
        end: int,
        period_s: int,
        coarse: bool = False,
    ) -> list[Point]:
        """The merged values of `keys` per period [start + k·period, +period) within
        [start, end), oldest first; periods without data are left out. `coarse` reads the
        rollup tier even where 1-second points exist (far fewer rows for long windows)."""
        handles = [h for h in (self._handles.get(k) for k in keys) if h is not None]
        if not handles or end <= start:
            return []
        period_s = max(int(period_s), 1)
        fine = not coarse and start >= int(self.clock()) - self.fine_retention_s
        resolution = FINE_S if fine else self.rollup_period_s
        out: dict[int, Point] = {}

        def fold(p: Point) -> None:
            if not start <= p.second < end:
                return
            slot = start + (p.second - start) // period_s * period_s
            agg = out.get(slot)
            if agg is None:
                agg = out[slot] = Point(slot)
            agg.merge(p)

        sids = [h.sid for h in handles]
        with self._lock:
            for _, p in self.backend.read(sids, resolution, start, end):
                fold(p)
            if fine:
                for h in handles:
                    for p in h.points.copy():
                        fold(p)
                wanted_fine = set(sids)
                for sid, p in self._late.copy():
                    if sid in wanted_fine:
                        fold(p)
            else:
                wanted = set(sids)
                for (sid, _), p in list(self._minutes.items()):
                    if sid in wanted:
                        fold(p)
        return [out[slot] for slot in sorted(out)]

    def totals(self, keys: Iterable[MetricKey], start: int, end: int) -> dict[MetricKey, Point]:
        """Each series' rollup-tier values in [start, end) (whole minutes, as flushed), in
        one backend read and one pass over the open minutes, however many series."""
        by_sid = {h.sid: h.key for h in (self._handles.get(k) for k in keys) if h is not None}
        out = {key: Point(start) for key in by_sid.values()}
        with self._lock:
            rows = list(self.backend.read(list(by_sid), self.rollup_period_s, start, end))
            rows += [(sid, p) for (sid, _), p in self._minutes.items() if sid in by_sid]
        for sid, p in rows:
            if start <= p.second < end:
                out[by_sid[sid]].merge(p)
        return out

    def aggregate(self, keys: Iterable[MetricKey], start: int, end: int) -> Point:
        """Everything of `keys` in [start, end) as one value."""
        total = Point(start)
        for p in self.query(keys, start, end, max(end - start, 1)):
            total.merge(p)
        return total

    # --- flushing and retention ------------------------------------------------------

    def flush(self, final: bool = False) -> int:
        """Write completed seconds (all of them when `final`) and completed minutes; expire
        old rows. Returns the number of fine points written. Runs off the event loop."""
        while self._unregistered:
            h = self._unregistered.popleft()
            self.backend.register(h.sid, h.key, h.sketched)
        now = int(self.clock())
        cutoff = now + 2 if final else now - 1
        step = self.rollup_period_s
        fine: list[tuple[int, Point]] = []
        taken: list[tuple[SeriesHandle, int]] = []
        for h in list(self._handles.values()):
            n = 0
            for p in h.points.copy():
                if p.second >= cutoff:
                    break
                fine.append((h.sid, p))
                n += 1
            if n:
                taken.append((h, n))
        with self._lock:
            fine.extend(self._late.popleft() for _ in range(len(self._late)))
            for sid, p in fine:
                slot = p.second // step * step
                agg = self._minutes.get((sid, slot))
                if agg is None:
                    agg = self._minutes[(sid, slot)] = Point(slot)
                agg.merge(p)
            done = [k for k in self._minutes if final or k[1] + step <= cutoff]
            rollups = [(sid, self._minutes[(sid, slot)]) for sid, slot in done]
            if fine:
                self.backend.write(FINE_S, fine)
            if rollups:
                self.backend.write(step, rollups)
            for k in done:
                del self._minutes[k]
            for h, n in taken:
                for _ in range(n):
                    h.points.popleft()
        if now - self._expired_at >= 60:
            self._expired_at = now
            self.backend.expire(FINE_S, now - self.fine_retention_s)
            self.backend.expire(step, now - self.rollup_retention_s)
        return len(fine)
