"""The rules behind scaling an asynchronous endpoint to zero and back, without processes:
which targets take MinCapacity 0, target tracking on the backlog scaling in to 0, the
step policy scaling out from 0, and the HasBacklogWithoutCapacity alarm reading the
per-endpoint series at 0 instances."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from modelhost.errors import ValidationException
from modelhost.jobs.asyncinf.lease import backlog_gauges
from modelhost.jobs.asyncinf.metrics import AsyncMetrics
from modelhost.scaling.book import dimension
from modelhost.scaling.capacity import Capacity
from modelhost.scaling.decisions import CooldownState, Direction, Limits
from modelhost.scaling.policy_rules import scheduled_spec
from modelhost.scaling.step import StepScaling, step_decision
from modelhost.scaling.target_tracking import IN_DATAPOINTS, TargetTracking, track
from modelhost.store.queue import Backlog
from modelhost.telemetry.alarm_spec import AlarmSpec
from modelhost.telemetry.alarms import AlarmState, evaluate
from modelhost.telemetry.metric_store import MetricStore
from modelhost.testing.clock import FakeClock

DIM = dimension("sagemaker:variant:DesiredInstanceCount")
# The AWS docs' pair: target 5 backlog per instance; +1 on HasBacklogWithoutCapacity >= 1.
TRACKING = TargetTracking(5.0, scale_out_cooldown_s=300, scale_in_cooldown_s=600)
STEP = StepScaling.from_spec(
    {
        "AdjustmentType": "ChangeInCapacity",
        "MetricAggregationType": "Average",
        "Cooldown": 300,
        "StepAdjustments": [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}],
    }
)


def _capacity(extra: dict[str, Any]) -> Capacity:
    endpoint = SimpleNamespace(current=SimpleNamespace(config=SimpleNamespace(extra=extra)))
    status = SimpleNamespace(get=lambda name: endpoint if name == "e" else None)
    return Capacity(SimpleNamespace(state=SimpleNamespace(status=status)))  # type: ignore[arg-type]


def test_only_an_async_endpoint_takes_min_capacity_zero() -> None:
    assert _capacity({"AsyncInferenceConfig": {"OutputConfig": {}}}).least("e", DIM) == 0
    assert _capacity({}).least("e", DIM) == 1
    assert _capacity({}).least("missing", DIM) == 1


def test_scheduled_action_min_capacity_zero_follows_the_target() -> None:
    action = {
        "ScheduledActionName": "night",
        "ResourceId": "endpoint/e/variant/AllTraffic",
        "ScalableDimension": DIM.name,
        "Schedule": "cron(0 20 * * ? *)",
        "ScalableTargetAction": {"MinCapacity": 0, "MaxCapacity": 1},
    }
    assert scheduled_spec(action, None, least=0)["ScalableTargetAction"]["MinCapacity"] == 0
    with pytest.raises(ValidationException, match="MinCapacity must be at least 1"):
        scheduled_spec(action, None)


def test_an_empty_queue_tracks_down_to_zero_instances() -> None:
    idle = [0.0] * IN_DATAPOINTS
    decision = track(TRACKING, idle, Limits(0, 1, 1), CooldownState(), 1000.0)
    assert decision is not None and decision.direction == Direction.IN
    assert decision.desired == 0 and decision.held is None
    # MinCapacity 1 (a real-time endpoint) stops at one instance.
    assert track(TRACKING, idle, Limits(1, 1, 1), CooldownState(), 1000.0) is None


def test_target_tracking_alone_cannot_leave_zero() -> None:
    # ceil(0 × backlog / target) is 0: this is why the step policy exists.
    waiting = [1.0] * IN_DATAPOINTS
    assert track(TRACKING, waiting, Limits(0, 1, 0), CooldownState(), 1000.0) is None
    flood = [50.0] * IN_DATAPOINTS
    assert track(TRACKING, flood, Limits(0, 4, 0), CooldownState(), 1000.0) is None


def test_the_backlog_alarm_step_adds_one_instance_from_zero() -> None:
    decision = step_decision(STEP, [1.0, 1.0], 1.0, Limits(0, 1, 0), CooldownState(), 1000.0)
    assert decision is not None and decision.direction == Direction.OUT
    assert decision.desired == 1 and decision.held is None
    # At MaxCapacity already: nothing to do.
    assert step_decision(STEP, [1.0, 1.0], 1.0, Limits(0, 1, 1), CooldownState(), 1000.0) is None


def test_has_backlog_without_capacity_alarm_reads_the_endpoint_series_at_zero() -> None:
    clock = FakeClock(1000.0)
    series = MetricStore(clock=clock)
    metrics = AsyncMetrics(series)
    spec = AlarmSpec.parse(
        {
            "AlarmName": "e-backlog",
            "Namespace": "AWS/SageMaker",
            "MetricName": "HasBacklogWithoutCapacity",
            "Dimensions": [{"Name": "EndpointName", "Value": "e"}],
            "Statistic": "Average",
            "Period": 1,
            "EvaluationPeriods": 2,
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        }
    )
    for _ in range(3):
        metrics.backlog("e", None, 0, clock())
        clock.advance(1.0)
    assert evaluate(spec, series, clock())[0] == AlarmState.OK
    for _ in range(3):
        metrics.backlog("e", Backlog(1, clock() - 1.0), 0, clock())
        clock.advance(1.0)
    assert evaluate(spec, series, clock())[0] == AlarmState.ALARM


def test_backlog_gauges_at_zero_instances() -> None:
    gauges = backlog_gauges(Backlog(3, 90.0), 0, 100.0)
    assert gauges["HasBacklogWithoutCapacity"] == 1.0
    # Per instance at zero instances: the whole backlog (no division by zero).
    assert gauges["ApproximateBacklogSizePerInstance"] == 3.0
    assert backlog_gauges(None, 0, 100.0)["HasBacklogWithoutCapacity"] == 0.0
