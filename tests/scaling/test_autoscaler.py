"""The autoscaler's pass with a fake clock, in-memory series and a stand-in for the
endpoint's capacity: policies combine, activities carry AWS's texts, and a change while
the endpoint is Updating is refused with a Failed activity that says why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelhost.scaling.autoscaler import Autoscaler
from modelhost.scaling.book import DIMENSIONS, Dimension, ScalingBook
from modelhost.scaling.capacity import Capacity
from modelhost.scaling.service import ScalingService
from modelhost.store.metadata import MetadataStore
from modelhost.telemetry.alarms import AlarmBook
from modelhost.telemetry.metric_store import MetricKey
from modelhost.telemetry.series import SeriesStore, variant_key
from modelhost.testing.clock import FakeClock

DIM = "sagemaker:variant:DesiredInstanceCount"
RID = "endpoint/ep/variant/AllTraffic"


class FakeCapacity(Capacity):
    """One variant whose capacity is a number; `status` stands for the endpoint's."""

    def __init__(self) -> None:
        self.value = 1
        self.status = "InService"

    def current(self, endpoint: str, variant: str, dim: Dimension) -> int | None:
        return self.value if (endpoint, variant) == ("ep", "AllTraffic") else None

    def serving(self, endpoint: str, variant: str, dim: Any = None) -> int | None:
        return self.value

    def endpoint(self, name: str) -> Any:
        return None

    def set(self, endpoint: str, variant: str, dim: Dimension, value: int) -> str | None:
        if self.status != "InService":
            return f"The endpoint {endpoint} is in {self.status} status."
        self.value = value
        return None


World = tuple[Autoscaler, ScalingService, FakeCapacity, SeriesStore, FakeClock]


@pytest.fixture()
def world(tmp_path: Path) -> World:
    clock = FakeClock(960_000.0)  # a whole minute: datapoints line up
    store = MetadataStore(f"sqlite:///{tmp_path / 'meta.db'}")
    book = ScalingBook(store, "us-east-1", "123456789012", clock)
    capacity = FakeCapacity()
    series = SeriesStore(clock=clock)
    alarms = AlarmBook(series, lambda _n, _d: None, clock)
    service = ScalingService(book, capacity)
    service.call(
        "RegisterScalableTarget",
        {
            "ServiceNamespace": "sagemaker",
            "ResourceId": RID,
            "ScalableDimension": DIM,
            "MinCapacity": 1,
            "MaxCapacity": 4,
        },
    )
    scaler = Autoscaler(book, capacity, series, alarms, 60.0, clock)
    return scaler, service, capacity, series, clock


def _tracking(service: ScalingService, name: str, target: float, **extra: Any) -> None:
    service.call(
        "PutScalingPolicy",
        {
            "PolicyName": name,
            "ServiceNamespace": "sagemaker",
            "ResourceId": RID,
            "ScalableDimension": DIM,
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": {
                "TargetValue": target,
                "PredefinedMetricSpecification": {
                    "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
                },
                **extra,
            },
        },
    )


def _minutes(series: SeriesStore, clock: FakeClock, per_minute: float, n: int) -> None:
    """n minutes of InvocationsPerInstance at `per_minute` (one point a second)."""
    handle = series.handle(variant_key("InvocationsPerInstance", "ep", "AllTraffic"))
    for _ in range(n * 60):
        handle.add(per_minute / 60.0, int(clock()))
        clock.advance(1.0)


def _activities(service: ScalingService) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = service.call(
        "DescribeScalingActivities", {"ServiceNamespace": "sagemaker"}
    )["ScalingActivities"]
    return out


def test_scale_out_writes_an_activity_that_succeeds_once_instances_serve(world: World) -> None:
    scaler, service, capacity, series, clock = world
    _tracking(service, "p", 70.0)
    _minutes(series, clock, 210.0, 3)
    scaler.evaluate()
    assert capacity.value == 3  # ceil(1 * 210 / 70)
    scaler.evaluate()  # the fake serves at once
    (activity,) = _activities(service)
    assert activity["Description"] == "Setting desired instance count to 3."
    assert activity["StatusCode"] == "Successful"
    assert "AlarmHigh" in activity["Cause"] and activity["Cause"].endswith("triggered policy p")


def test_scale_in_needs_every_tracking_policy_to_agree(world: World) -> None:
    scaler, service, capacity, series, clock = world
    capacity.value = 4
    _tracking(service, "a", 70.0, ScaleInCooldown=0)
    _tracking(service, "b", 10.0, ScaleInCooldown=0)
    _minutes(series, clock, 30.0, 15)  # low for "a" (< 63), high for "b"
    scaler.evaluate()
    assert capacity.value == 4  # "b" is at the max already; "a" alone cannot scale in
    service.call(
        "DeleteScalingPolicy",
        {
            "PolicyName": "b",
            "ServiceNamespace": "sagemaker",
            "ResourceId": RID,
            "ScalableDimension": DIM,
        },
    )
    scaler.evaluate()
    assert capacity.value == 2  # ceil(4 * 30 / 70)


def test_a_change_while_updating_fails_with_the_reason_once(world: World) -> None:
    scaler, service, capacity, series, clock = world
    _tracking(service, "p", 70.0)
    _minutes(series, clock, 210.0, 3)
    capacity.status = "Updating"
    scaler.evaluate()
    scaler.evaluate()
    (failed,) = _activities(service)
    assert failed["StatusCode"] == "Failed"
    assert failed["StatusMessage"] == (
        "Failed to set desired instance count to 3. Reason: The endpoint ep is in Updating status."
    )
    capacity.status = "InService"
    scaler.evaluate()
    assert capacity.value == 3
    scaler.evaluate()
    assert _activities(service)[0]["StatusCode"] == "Successful"


def test_dimensions_are_one_table() -> None:
    assert list(DIMENSIONS) == [DIM, "sagemaker:variant:DesiredProvisionedConcurrency"]
    assert DIMENSIONS[DIM].member == "InitialInstanceCount"
    provisioned = DIMENSIONS["sagemaker:variant:DesiredProvisionedConcurrency"]
    assert provisioned.member == "ServerlessConfig.ProvisionedConcurrency"
    assert provisioned.serverless


def test_customized_metric_over_a_users_series(world: World) -> None:
    scaler, service, capacity, series, clock = world
    capacity.value = 2
    service.call(
        "PutScalingPolicy",
        {
            "PolicyName": "queue",
            "ServiceNamespace": "sagemaker",
            "ResourceId": RID,
            "ScalableDimension": DIM,
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": {
                "TargetValue": 10.0,
                "CustomizedMetricSpecification": {
                    "MetricName": "QueueDepth",
                    "Namespace": "MyApp",
                    "Dimensions": [{"Name": "Queue", "Value": "scoring"}],
                    "Statistic": "Average",
                },
            },
        },
    )
    key = MetricKey.of("MyApp", "QueueDepth", Queue="scoring")
    for _ in range(3 * 60):
        series.put(key, 25.0)  # PutMetricData, once a second
        clock.advance(1.0)
    scaler.evaluate()
    assert capacity.value == 4  # min(max 4, ceil(2 * 25 / 10) = 5)
    # Without data the policy does nothing (no zero is assumed for a user's metric).
    clock.advance(20 * 60)
    scaler.evaluate()
    assert capacity.value == 4
