"""The scaling policies as pure functions, against AWS's documented examples."""

from __future__ import annotations

import datetime as dt

import pytest

from modelhost.errors import ValidationException
from modelhost.scaling import schedule
from modelhost.scaling.decisions import CooldownState, Direction, Limits
from modelhost.scaling.step import StepScaling, percent_change, step_decision
from modelhost.scaling.target_tracking import TargetTracking, track

POLICY = TargetTracking(70.0, scale_out_cooldown_s=60, scale_in_cooldown_s=300)


def test_scale_out_needs_three_breaching_datapoints_and_uses_the_formula() -> None:
    limits = Limits(1, 10, 2)
    # Two breaching datapoints: the high alarm has not fired.
    assert track(POLICY, [50, 140, 140], limits, CooldownState(), 0) is None
    # AWS's example: 2 instances at 140 invocations per instance, target 70 -> 4.
    decision = track(POLICY, [140, 140, 140], limits, CooldownState(), 0)
    assert decision is not None and decision.direction == Direction.OUT
    assert decision.desired == 4 and decision.held is None
    # A missing datapoint keeps the alarm from firing.
    assert track(POLICY, [140, None, 140], limits, CooldownState(), 0) is None


def test_max_and_min_capacity_bound_the_result() -> None:
    assert track(POLICY, [700] * 3, Limits(1, 3, 2), CooldownState(), 0).desired == 3  # type: ignore[union-attr]
    assert track(POLICY, [700] * 3, Limits(1, 2, 2), CooldownState(), 0) is None
    low = track(POLICY, [0.0] * 15, Limits(2, 5, 4), CooldownState(), 0)
    assert low is not None and low.direction == Direction.IN and low.desired == 2


def test_scale_in_needs_fifteen_datapoints_below_ninety_percent() -> None:
    limits = Limits(1, 10, 4)
    assert track(POLICY, [10.0] * 14, limits, CooldownState(), 0) is None
    # 63 is exactly 90 % of 70: not below it.
    assert track(POLICY, [63.0] * 15, limits, CooldownState(), 0) is None
    decision = track(POLICY, [35.0] * 15, limits, CooldownState(), 0)
    assert decision is not None and decision.desired == 2  # ceil(4 * 35 / 70)
    disabled = TargetTracking(70.0, disable_scale_in=True)
    assert track(disabled, [35.0] * 15, limits, CooldownState(), 0) is None


def test_scale_out_cooldown_counts_the_capacity_it_added() -> None:
    state = CooldownState()
    state.record(Direction.OUT, before=1, now=100.0, out_cooldown_s=60)
    # Still 140 per instance measured, now 2 instances: from the base (1) that is 2 -> held.
    held = track(POLICY, [140.0] * 3, Limits(1, 10, 2), state, 130.0)
    assert held is not None and held.held is not None and "scale-out cooldown" in held.held
    # A larger need (from the base of 1, 420 -> 6) goes ahead inside the cooldown.
    more = track(POLICY, [420.0] * 3, Limits(1, 10, 2), state, 130.0)
    assert more is not None and more.held is None and more.desired == 6
    # After the cooldown, the formula applies to the current capacity again.
    after = track(POLICY, [140.0] * 3, Limits(1, 10, 2), state, 161.0)
    assert after is not None and after.held is None and after.desired == 4


def test_scale_in_cooldown_holds_scale_in_but_not_scale_out() -> None:
    state = CooldownState()
    state.record(Direction.IN, before=4, now=0.0, out_cooldown_s=60)
    held = track(POLICY, [10.0] * 15, Limits(1, 10, 3), state, 100.0)
    assert held is not None and held.held is not None and "scale-in" in held.held
    out = track(POLICY, [140.0] * 3, Limits(1, 10, 3), state, 100.0)
    assert out is not None and out.held is None and out.desired == 6
    free = track(POLICY, [10.0] * 15, Limits(1, 10, 3), state, 301.0)
    assert free is not None and free.held is None and free.desired == 1


def test_cooldowns_follow_the_period_scale() -> None:
    state = CooldownState()
    state.record(Direction.IN, before=4, now=0.0, out_cooldown_s=1)
    # A period of 1 s makes AWS's 300 s a 5 s cooldown.
    held = track(POLICY, [10.0] * 15, Limits(1, 10, 3), state, 4.0, period_s=1.0)
    assert held is not None and held.held is not None
    free = track(POLICY, [10.0] * 15, Limits(1, 10, 3), state, 5.5, period_s=1.0)
    assert free is not None and free.held is None


# --- step scaling --------------------------------------------------------------------

STEPS = {
    "AdjustmentType": "PercentChangeInCapacity",
    "StepAdjustments": [
        {"MetricIntervalLowerBound": 0, "MetricIntervalUpperBound": 10, "ScalingAdjustment": 0},
        {"MetricIntervalLowerBound": 10, "MetricIntervalUpperBound": 20, "ScalingAdjustment": 10},
        {"MetricIntervalLowerBound": 20, "ScalingAdjustment": 30},
    ],
    "Cooldown": 60,
}


def test_step_scaling_the_documented_example() -> None:
    # AWS's example: threshold 50, capacity 10; 60 -> +10 % -> 11; 70 -> +30 % -> 13.
    policy = StepScaling.from_spec(STEPS)
    limits = Limits(1, 20, 10)
    assert step_decision(policy, [55.0], 50, limits, CooldownState(), 0) is None
    d = step_decision(policy, [60.0], 50, limits, CooldownState(), 0)
    assert d is not None and d.desired == 11
    d = step_decision(policy, [70.0], 50, limits, CooldownState(), 0)
    assert d is not None and d.desired == 13


def test_percent_rounding_and_min_adjustment_magnitude() -> None:
    assert percent_change(127, 10, None) == 12  # 12.7 rounds down
    assert percent_change(67, -10, None) == -6  # -6.7 rounds toward zero
    assert percent_change(5, 10, None) == 1  # 0.5 rounds up to 1
    assert percent_change(5, -10, None) == -1
    assert percent_change(10, 10, 2) == 2  # MinAdjustmentMagnitude raises 1 to 2


def test_change_exact_and_aggregation() -> None:
    change = StepScaling.from_spec(
        {
            "AdjustmentType": "ChangeInCapacity",
            "MetricAggregationType": "Maximum",
            "StepAdjustments": [
                {"MetricIntervalUpperBound": 0, "ScalingAdjustment": -1},
                {"MetricIntervalLowerBound": 0, "ScalingAdjustment": 2},
            ],
        }
    )
    up = step_decision(change, [40.0, 80.0], 50, Limits(1, 10, 2), CooldownState(), 0)
    assert up is not None and up.direction == Direction.OUT and up.desired == 4
    down = step_decision(change, [10.0, 20.0], 50, Limits(1, 10, 2), CooldownState(), 0)
    assert down is not None and down.direction == Direction.IN and down.desired == 1
    exact = StepScaling.from_spec(
        {"AdjustmentType": "ExactCapacity", "StepAdjustments": [{"ScalingAdjustment": 5}]}
    )
    d = step_decision(exact, [1.0], 0, Limits(1, 4, 2), CooldownState(), 0)
    assert d is not None and d.desired == 4  # within MaxCapacity


def test_step_bounds_inclusive_above_exclusive_below() -> None:
    policy = StepScaling.from_spec(
        {
            "AdjustmentType": "ChangeInCapacity",
            "StepAdjustments": [
                {
                    "MetricIntervalLowerBound": 0,
                    "MetricIntervalUpperBound": 10,
                    "ScalingAdjustment": 1,
                },
                {"MetricIntervalLowerBound": 10, "ScalingAdjustment": 3},
            ],
        }
    )
    d = step_decision(policy, [60.0], 50, Limits(1, 10, 2), CooldownState(), 0)
    assert d is not None and d.desired == 5  # a breach of 10 belongs to [10, inf)


# --- schedules -----------------------------------------------------------------------


def test_at_fires_once_in_its_timezone() -> None:
    s = schedule.parse("at(2026-12-06T09:00:00)", "America/New_York")
    when = dt.datetime(2026, 12, 6, 14, 0, tzinfo=dt.UTC).timestamp()
    assert schedule.fires_between(s, when - 1, when, 0)
    assert not schedule.fires_between(s, when, when + 3600, 0)


def test_rate_fires_every_interval_from_its_origin() -> None:
    s = schedule.parse("rate(5 minutes)")
    assert schedule.fires_between(s, 299.0, 300.0, 0.0)
    assert not schedule.fires_between(s, 300.0, 599.0, 0.0)
    assert schedule.fires_between(s, 599.0, 601.0, 0.0)


def test_cron_uses_aws_fields_and_the_timezone() -> None:
    # 12:15 on weekdays (2-6 is MON-FRI in EventBridge's numbering), in Berlin.
    s = schedule.parse("cron(15 12 ? * 2-6 *)", "Europe/Berlin")
    monday = dt.datetime(2026, 12, 7, 11, 15, tzinfo=dt.UTC).timestamp()  # 12:15 CET
    assert schedule.fires_between(s, monday - 60, monday, 0)
    sunday = dt.datetime(2026, 12, 6, 11, 15, tzinfo=dt.UTC).timestamp()
    assert not schedule.fires_between(s, sunday - 60, sunday, 0)
    past = schedule.parse("cron(0 0 * * ? 2020)")
    assert not schedule.fires_between(past, monday - 86400, monday, 0)


@pytest.mark.parametrize(
    "text", ["every 5 minutes", "rate(0 minutes)", "cron(0 12 * * *)", "cron(0 12 1 * 2 *)"]
)
def test_bad_schedules_are_refused(text: str) -> None:
    with pytest.raises(ValidationException):
        schedule.parse(text)


def test_bad_timezone_is_refused() -> None:
    with pytest.raises(ValidationException, match="Timezone"):
        schedule.parse("rate(1 minute)", "Mars/Olympus")
