"""The series store's pure core: bucketing, rollup, statistics, retention, memory bound."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from modelhost.telemetry.metric_db import SqliteBackend
from modelhost.telemetry.metric_store import MemoryBackend, MetricKey, MetricStore, percentile
from modelhost.telemetry.series import SeriesStore, variant_key
from modelhost.telemetry.sketch import RELATIVE_ACCURACY, Sketch


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


KEY = MetricKey.of("Biz", "Latency", Shop="a")


def test_sketch_quantiles_are_within_the_relative_accuracy() -> None:
    rng = random.Random(3)
    values = sorted(rng.lognormvariate(6, 1.5) for _ in range(20_000))
    sketch = Sketch()
    for v in values:
        sketch.add(v)
    for q in (0.0, 0.5, 0.9, 0.99, 0.999, 1.0):
        exact = values[int(q * (len(values) - 1))]
        got = sketch.quantile(q)
        assert got is not None and abs(got - exact) <= RELATIVE_ACCURACY * exact * 1.0001
    again = Sketch.from_bytes(sketch.to_bytes())
    assert again.bins == sketch.bins and again.count == len(values)
    assert Sketch().quantile(0.5) is None


def test_sketch_stays_bounded_and_keeps_zero() -> None:
    sketch = Sketch()
    for i in range(1, 5000):
        sketch.add(1.05**i)
    sketch.add(0.0)
    assert len(sketch.bins) <= 2048
    assert sketch.quantile(0.0) == 0.0
    top = sketch.quantile(1.0)
    assert top is not None and abs(top - 1.05**4999) <= 0.011 * 1.05**4999


def test_percentile_names() -> None:
    assert percentile("p99") == 0.99 and percentile("p99.9") == pytest.approx(0.999)
    assert percentile("Sum") is None and percentile("p101") is None and percentile("p") is None


def test_points_bucket_by_second_and_periods_merge() -> None:
    clock = Clock(1000.2)
    store = MetricStore(clock=clock)
    h = store.handle(KEY, sketched=True)
    for at, value in [(1000.2, 1.0), (1000.9, 3.0), (1001.5, 10.0), (1065.0, 7.0)]:
        clock.now = at
        h.add(value, int(at))
    clock.now = 1100
    points = store.query([KEY], 960, 1100, 60)
    assert [p.second for p in points] == [960, 1020]
    first = points[0]
    assert (first.count, first.total, first.minimum, first.maximum) == (3, 14.0, 1.0, 10.0)
    assert first.statistic("Average") == pytest.approx(14 / 3)
    assert first.statistic("SampleCount") == 3.0
    assert abs((first.statistic("p100") or 0) - 10.0) <= 0.1
    assert store.query([KEY], 1000, 1001, 1)[0].count == 2
    assert store.aggregate([KEY], 0, 2000).count == 4
    assert store.query([MetricKey.of("Biz", "Nope")], 0, 2000, 60) == []


def test_flush_moves_seconds_out_of_memory_and_rolls_up_minutes() -> None:
    clock = Clock(0)
    backend = MemoryBackend()
    store = MetricStore(backend, clock=clock)
    h = store.handle(KEY, sketched=True)
    for second in range(1000, 1130):
        clock.now = second + 0.5
        h.add(float(second % 7), second)
        store.flush()
    # Only the last seconds and the current minute stay in memory.
    assert store.pending_points() <= 4
    fine = backend.rows[1]
    assert sum(p.count for _, p in fine) >= 127
    minutes = {p.second: p for _, p in backend.rows[60]}
    assert sorted(minutes) == [960, 1020]  # 1080 … 1139 is not complete yet
    assert minutes[1020].count == 60
    # Queries see the same values before and after a flush, in both tiers.
    assert store.aggregate([KEY], 1020, 1080).count == 60
    store.flush(final=True)
    assert store.pending_points() == 0
    assert store.aggregate([KEY], 1000, 1130).count == 130


def test_old_queries_read_the_rollup_and_retention_expires() -> None:
    clock = Clock(0)
    backend = MemoryBackend()
    store = MetricStore(backend, fine_retention_s=600, rollup_retention_s=3600, clock=clock)
    h = store.handle(KEY)
    for second in range(0, 240):
        h.add(1.0, second)
    clock.now = 300
    store.flush(final=True)
    clock.now = 1300  # the fine tier (600 s) no longer covers second 0
    store.flush()
    assert all(p.second >= 700 for _, p in backend.rows[1])
    old = store.query([KEY], 0, 240, 60)
    assert [(p.second, p.count) for p in old] == [(0, 60), (60, 60), (120, 60), (180, 60)]
    clock.now = 5000
    store.flush()
    assert backend.rows[60] == []


def test_memory_is_bounded_whatever_the_number_of_series() -> None:
    clock = Clock(1000)
    store = SeriesStore(clock, max_series=3000)
    # 50 endpoints × 3 variants × 7 metrics = 1050 series; then a flood of models.
    for second in range(1000, 1060):
        clock.now = second
        for e in range(50):
            for v in range(3):
                store.record(f"ep{e}", f"v{v}", status=200, model_us=500.0, overhead_us=40.0)
        store.flush()
    assert store.series_count == 1050
    assert store.pending_points() <= 3 * 1050 + 1050
    for m in range(10_000):
        store.observe(MetricKey.of("AWS/SageMaker", "ModelLoadingTime", Model=str(m)), 1.0)
    assert store.series_count == 3000 and store.dropped == 10_000 - 1950


def test_sqlite_backend_survives_a_reopen(tmp_path: Path) -> None:
    clock = Clock(1000)
    path = tmp_path / "metrics.db"
    store = SeriesStore(clock, backend=SqliteBackend(path))
    for second in range(1000, 1010):
        clock.now = second
        store.record("ep", "A", status=500 if second % 2 else 200, model_us=100.0, overhead_us=5)
    store.put(KEY, 42.0, 990.0)  # a late value, its own row
    store.flush(final=True)
    assert isinstance(store.backend, SqliteBackend)
    store.backend.close()
    again = SeriesStore(clock, backend=SqliteBackend(path))
    errors = again.aggregate([variant_key("Invocation5XXErrors", "ep", "A")], 1000, 1010)
    assert (errors.count, errors.total) == (10, 5.0)
    latency = again.aggregate([variant_key("ModelLatency", "ep", "A")], 0, 2000)
    assert abs((latency.statistic("p99") or 0) - 100.0) <= 1.0
    assert again.aggregate([KEY], 0, 2000).total == 42.0
    # The series registry comes back too: new series get fresh ids.
    assert again.keys("AWS/SageMaker", "Invocations") == [variant_key("Invocations", "ep", "A")]
    again.handle(MetricKey.of("Biz", "New"))
    assert again.series_count == store.series_count + 1


def test_totals_read_many_series_at_once_from_the_rollup_tier(tmp_path: Path) -> None:
    clock = Clock(1_800_000_000.0)
    store = SeriesStore(clock=clock, backend=SqliteBackend(tmp_path / "m.db"))
    for variant, n in (("A", 3), ("B", 5)):
        for _ in range(n):
            store.record("e", variant, status=200, model_us=10.0, overhead_us=1.0)
    clock.now += 90  # one minute flushed and written, the next still open
    store.flush()
    for _ in range(2):
        store.record("e", "A", status=200, model_us=10.0, overhead_us=1.0)
    clock.now += 3
    store.flush()
    keys = [variant_key("Invocations", "e", v) for v in ("A", "B", "C")]
    found = store.totals(keys, int(clock.now) - 600, int(clock.now) + 1)
    assert {k.dimension("VariantName"): p.total for k, p in found.items()} == {"A": 5, "B": 5}
    # Rollup points stand at their minute's start: the open minute alone.
    minute = int(clock.now) // 60 * 60
    assert store.totals(keys, minute, int(clock.now) + 1)[keys[0]].total == 2
