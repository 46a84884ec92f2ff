"""AlarmBook.sync: several gateways' books follow the stored alarms; only the leader's
evaluation decides states."""

from __future__ import annotations

from typing import Any

from modelhost.telemetry.alarms import AlarmBook, AlarmState
from modelhost.telemetry.series import SAGEMAKER, SeriesStore, variant_key
from modelhost.testing.clock import FakeClock

ALARM = {
    "AlarmName": "errors", "Namespace": SAGEMAKER, "MetricName": "Invocation5XXErrors",
    "Dimensions": [{"Name": "EndpointName", "Value": "ep"},
                   {"Name": "VariantName", "Value": "A"}],
    "Statistic": "Sum", "Period": 10, "EvaluationPeriods": 1, "Threshold": 0,
    "ComparisonOperator": "GreaterThanThreshold",
}  # fmt: skip


def test_books_follow_the_store_and_the_leaders_states() -> None:
    clock = FakeClock(1_000_000.0)
    series = SeriesStore(clock)
    stored: dict[str, dict[str, Any]] = {}

    def persist(name: str, doc: dict[str, Any] | None) -> None:
        if doc is None:
            stored.pop(name, None)
        else:
            stored[name] = doc

    leader, follower = AlarmBook(series, persist, clock), AlarmBook(series, persist, clock)
    read_at = clock()
    clock.advance(1)
    follower.put(ALARM)  # through the follower, after the leader read the store
    leader.sync([], take_state=False, read_at=read_at)
    assert follower.names() == ["errors"]  # newer than what was read: kept
    leader.sync(list(stored.values()), take_state=False, read_at=clock())
    assert leader.names() == ["errors"]
    series.observe(variant_key("Invocation5XXErrors", "ep", "A"), 1.0)
    clock.advance(11)
    assert leader.evaluate_all() == ["errors"]
    follower.sync(list(stored.values()), take_state=True, read_at=clock())
    assert follower.state("errors") is AlarmState.ALARM  # the leader's, not evaluated
    clock.advance(1)
    follower.set_state("errors", AlarmState.OK, "testing")  # SetAlarmState elsewhere
    leader.sync(list(stored.values()), take_state=False, read_at=clock())
    assert leader.state("errors") is AlarmState.OK
    follower.delete("errors")
    clock.advance(1)
    leader.sync(list(stored.values()), take_state=False, read_at=clock())
    assert leader.names() == []
