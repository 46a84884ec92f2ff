from __future__ import annotations

import pytest

from modelhost.control.guardrails import rollback_alarms, traffic_steps
from modelhost.errors import ValidationException


def test_all_at_once() -> None:
    assert traffic_steps({"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}, 3) == [1.0]


def test_canary_by_count_and_percent() -> None:
    canary = {"Type": "CANARY", "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1}}
    assert traffic_steps(canary, 4) == [0.25, 1.0]
    pct = {"Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10}}
    assert traffic_steps(pct, 4) == [0.1, 1.0]
    whole = {"Type": "CANARY", "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 2}}
    assert traffic_steps(whole, 2) == [1.0]


def test_linear_steps_end_at_one() -> None:
    linear = {"Type": "LINEAR", "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 30}}
    assert traffic_steps(linear, 1) == pytest.approx([0.3, 0.6, 0.9, 1.0])
    half = {"Type": "LINEAR", "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 50}}
    assert traffic_steps(half, 1) == [0.5, 1.0]


@pytest.mark.parametrize(
    "routing",
    [
        {"Type": "CANARY"},
        {"Type": "LINEAR"},
        {"Type": "CANARY", "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 5}},
    ],
)
def test_bad_routing_is_refused(routing: dict[str, object]) -> None:
    with pytest.raises(ValidationException):
        traffic_steps(routing, 2)


def test_rollback_alarm_names() -> None:
    config = {"AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "a"}, {"AlarmName": "b"}]}}
    assert rollback_alarms(config) == ["a", "b"]
    assert rollback_alarms(None) == []


def test_rolling_batch_by_count_and_percent() -> None:
    from modelhost.control.guardrails import rolling_batch

    assert rolling_batch({"Type": "INSTANCE_COUNT", "Value": 2}, 10) == 2
    assert rolling_batch({"Type": "CAPACITY_PERCENT", "Value": 25}, 10) == 3
    # A percentage of a small fleet still moves at least one instance.
    assert rolling_batch({"Type": "CAPACITY_PERCENT", "Value": 5}, 2) == 1
    with pytest.raises(ValidationException, match="between 5 and 100"):
        rolling_batch({"Type": "CAPACITY_PERCENT", "Value": 2}, 10)
    with pytest.raises(ValidationException, match="at least 1"):
        rolling_batch({"Type": "INSTANCE_COUNT", "Value": 0}, 10)


def test_rolling_steps_add_before_they_retire() -> None:
    from modelhost.control.guardrails import rolling_steps

    assert rolling_steps(4, 4, 1) == [(1, 3), (2, 2), (3, 1), (4, 0)]
    assert rolling_steps(4, 4, 3) == [(3, 1), (4, 0)]
    # Growing and shrinking fleets end at the new size with nothing old left.
    assert rolling_steps(2, 3, 1) == [(1, 1), (2, 0), (3, 0)]
    assert rolling_steps(3, 1, 1) == [(1, 2), (1, 1), (1, 0)]
    assert rolling_steps(1, 1, 5) == [(1, 0)]
