"""Alarm evaluation is a pure function of the definition, the series and the clock."""

from __future__ import annotations

from typing import Any

import pytest

from modelhost.errors import ValidationException
from modelhost.telemetry.alarms import AlarmBook, AlarmSpec, AlarmState, evaluate
from modelhost.telemetry.series import SeriesStore
from modelhost.testing.clock import FakeClock


def spec(**overrides: Any) -> AlarmSpec:
    body = {
        "AlarmName": "errors",
        "MetricName": "Invocation5XXErrors",
        "Dimensions": [{"Name": "EndpointName", "Value": "ep"}],
        "Statistic": "Sum",
        "Period": 10,
        "EvaluationPeriods": 3,
        "Threshold": 1,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        **overrides,
    }
    return AlarmSpec.parse(body)


def record(
    series: SeriesStore, clock: FakeClock, at: float, status: int, n: int = 1, variant: str = "A"
) -> None:
    clock.advance_to(at)
    for _ in range(n):
        series.record("ep", variant, status=status, model_us=100.0, overhead_us=10.0)


def test_no_traffic_is_insufficient_data() -> None:
    state, reason = evaluate(spec(), SeriesStore(), 1000.0)
    assert state == AlarmState.INSUFFICIENT_DATA and "no datapoints" in reason


def test_errors_in_enough_periods_raise_the_alarm() -> None:
    clock = FakeClock(0)
    series = SeriesStore(clock)
    record(series, clock, 1005, 200, 5)
    record(series, clock, 1015, 500, 2)
    # Datapoints [missing, 2, 0]: one breach.
    assert evaluate(spec(DatapointsToAlarm=1), series, 1030)[0] == AlarmState.ALARM
    assert evaluate(spec(DatapointsToAlarm=2), series, 1030)[0] == AlarmState.OK
    record(series, clock, 1025, 500, 1)
    state, reason = evaluate(spec(DatapointsToAlarm=2), series, 1030)
    assert state == AlarmState.ALARM
    assert "2 out of the last 3 datapoints" in reason
    assert evaluate(spec(), series, 1030)[0] == AlarmState.OK  # needs all 3


def test_missing_datapoints_let_the_present_ones_decide() -> None:
    clock = FakeClock(0)
    series = SeriesStore(clock)
    record(series, clock, 1025, 500, 1)
    # [1, missing, missing]: fewer datapoints than DatapointsToAlarm (3); the one decides.
    assert evaluate(spec(), series, 1030)[0] == AlarmState.ALARM


def test_current_period_is_not_evaluated_until_complete() -> None:
    clock = FakeClock(0)
    series = SeriesStore(clock)
    record(series, clock, 1031, 500, 3)
    assert evaluate(spec(), series, 1035)[0] == AlarmState.INSUFFICIENT_DATA
    assert evaluate(spec(), series, 1040)[0] == AlarmState.ALARM


def test_variant_dimension_and_statistics() -> None:
    clock = FakeClock(0)
    series = SeriesStore(clock)
    record(series, clock, 1001, 500, 1, variant="B")
    record(series, clock, 1001, 200, 3, variant="A")
    only_a = spec(
        Dimensions=[{"Name": "EndpointName", "Value": "ep"}, {"Name": "VariantName", "Value": "A"}]
    )
    assert evaluate(only_a, series, 1010)[0] == AlarmState.OK
    assert evaluate(spec(), series, 1010)[0] == AlarmState.ALARM
    rate = spec(Statistic="Average", Threshold=0.5, EvaluationPeriods=1)
    assert evaluate(rate, series, 1010)[0] == AlarmState.OK  # 1 of 4 = 0.25
    latency = spec(
        MetricName="ModelLatency",
        Statistic="Maximum",
        Threshold=50,
        ComparisonOperator="GreaterThanThreshold",
        EvaluationPeriods=1,
    )
    assert evaluate(latency, series, 1010)[0] == AlarmState.ALARM


def test_treat_missing_data() -> None:
    series = SeriesStore()
    assert evaluate(spec(TreatMissingData="notBreaching"), series, 1000)[0] == AlarmState.OK
    assert evaluate(spec(TreatMissingData="breaching"), series, 1000)[0] == AlarmState.ALARM


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"MetricName": "CPUUtilization"}, "MetricName"),
        ({"Statistic": "p99"}, "Statistic"),
        ({"ComparisonOperator": "Equal"}, "ComparisonOperator"),
        ({"Period": 0}, "Period"),
        ({"EvaluationPeriods": 2, "DatapointsToAlarm": 3}, "DatapointsToAlarm"),
        ({"Dimensions": []}, "EndpointName"),
        ({"Threshold": "high"}, "Threshold"),
    ],
)
def test_bad_definitions_name_the_field(override: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationException, match=field):
        spec(**override)


def test_book_tracks_state_changes_and_persists() -> None:
    clock = FakeClock(1000)
    series = SeriesStore(clock)
    saved: dict[str, Any] = {}
    book = AlarmBook(series, lambda name, doc: saved.__setitem__(name, doc), clock)
    book.put(spec(EvaluationPeriods=1).describe())
    assert book.state("errors") == AlarmState.INSUFFICIENT_DATA
    record(series, clock, 1001, 500)
    clock.advance_to(1010)
    assert book.evaluate_all() == ["errors"]
    assert book.state("errors") == AlarmState.ALARM
    assert book.evaluate_all() == []
    history = saved["errors"]["History"]
    assert history[-1]["Summary"] == "Alarm updated from INSUFFICIENT_DATA to ALARM"
    again = AlarmBook(series, lambda *_: None, clock)
    again.load([saved["errors"]])
    assert again.describe("errors")[0]["History"] == history
    assert book.delete("errors") and saved["errors"] is None and book.state("errors") is None
