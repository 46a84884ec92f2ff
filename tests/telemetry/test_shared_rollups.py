"""Two gateways' metric series merged through the `metric_rollups` table (on SQLite here;
the table is the same on PostgreSQL, where tests/gateway/test_gateways_shared.py runs it)."""

from __future__ import annotations

from pathlib import Path

from modelhost.store.metadata import MetadataStore
from modelhost.telemetry.alarms import AlarmBook, AlarmState
from modelhost.telemetry.metric_store import MemoryBackend
from modelhost.telemetry.series import SAGEMAKER, SeriesStore, variant_key
from modelhost.telemetry.shared_rollups import PublishingBackend, SharedRollups, gateway_identity
from modelhost.testing.clock import FakeClock

START = 1_000_020.0  # a minute starts here


def _gateway(store: MetadataStore, name: str, clock: FakeClock) -> SeriesStore:
    shared = SharedRollups(store.engine, name, 86400, clock)
    series = SeriesStore(clock, PublishingBackend(MemoryBackend(), shared, 60))
    series.peers = shared
    return series


def test_each_gateway_sees_the_others_minutes(tmp_path: Path) -> None:
    store = MetadataStore(f"sqlite:///{tmp_path / 'm.db'}")
    clock = FakeClock(START)
    a, b = _gateway(store, "a", clock), _gateway(store, "b", clock)
    for _ in range(3):
        a.record("ep", "A", status=200, model_us=1000.0, overhead_us=10.0)
    b.record("ep", "A", status=500, model_us=3000.0, overhead_us=10.0)
    b.record("ep", "B", status=200, model_us=2000.0, overhead_us=10.0)
    minute = int(START) // 60 * 60
    key = variant_key("Invocations", "ep", "A")
    # Before the minute completes, each sees only its own.
    assert a.aggregate([key], minute, minute + 60).count == 3
    clock.advance(62)  # the minute is complete (and flushed) one second after it ends
    a.flush()
    b.flush()
    for series in (a, b):
        both = series.query([key], minute, minute + 60, 60)
        assert [(p.second, p.count) for p in both] == [(minute, 4)]  # never twice
        assert series.keys(SAGEMAKER, "Invocations") == [
            variant_key("Invocations", "ep", "A"), variant_key("Invocations", "ep", "B"),
        ]  # fmt: skip
        errors = series.totals([variant_key("Invocation5XXErrors", "ep", "A")], minute, minute + 60)
        assert errors[variant_key("Invocation5XXErrors", "ep", "A")].total == 1.0
    # A percentile over both gateways' latencies (the sketches are shared too).
    latency = a.query([variant_key("ModelLatency", "ep", "A")], minute, minute + 60, 60)[0]
    assert latency.maximum == 3000.0 and latency.statistic("p99") is not None
    # An alarm evaluated by a sees b's errors (an endpoint-wide alarm reads b's variant B).
    book = AlarmBook(a, lambda *_: None, clock)
    book.put(
        {"AlarmName": "errors", "Namespace": SAGEMAKER, "MetricName": "Invocation5XXErrors",
         "Dimensions": [{"Name": "EndpointName", "Value": "ep"}], "Statistic": "Sum",
         "Period": 60, "EvaluationPeriods": 1, "Threshold": 0,
         "ComparisonOperator": "GreaterThanThreshold"},
    )  # fmt: skip
    book.evaluate_all()
    assert book.state("errors") is AlarmState.ALARM
    store.close()


def test_the_gateway_id_survives_a_restart(tmp_path: Path) -> None:
    assert gateway_identity(tmp_path) == gateway_identity(tmp_path)
    assert gateway_identity(tmp_path) != gateway_identity(tmp_path / "..")
