"""Application Auto Scaling against a real server, through boto3, with a 1-second period:
capacity follows the load without a failed request, cooldowns hold, a step policy and a
scheduled action change capacity, suspension stops scaling, and a restart keeps it all."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from modelhost.testing.churn import csv_rows
from modelhost.testing.server import ModelhostServer
from tests.scaling.support import (
    DIMENSION,
    activities,
    autoscaling_points,
    churn_endpoint,
    counts,
    kill_gateway,
    put_policy,
    register,
    resource,
    restart,
    scaling_server,
    track_invocations,
    variant_dimensions,
    wait_count,
    wait_for,
    wait_in_service,
)
from tests.support import ChurnModel, Loop, cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelhostServer]:
    with scaling_server(tmp_path_factory, "autoscaling-home") as srv:
        yield srv


@pytest.fixture(scope="module")
def clients(server: ModelhostServer) -> tuple[Any, Any, Any]:
    sm, rt = server.clients(retries={"max_attempts": 1, "mode": "standard"})
    return sm, rt, server.client("application-autoscaling")


def _row(model: ChurnModel) -> str:
    return csv_rows(model.data.X[:1])[0]


def test_capacity_follows_load_up_to_max_and_down_without_a_failed_request(
    clients: tuple[Any, Any, Any], churn_model: ChurnModel, server: ModelhostServer
) -> None:
    sm, rt, aas = clients
    name = churn_endpoint(sm, churn_model, "ramp")
    register(aas, name, 1, 3)
    # The seeds' policy; 5 invocations per instance per period is far below this loop.
    track_invocations(aas, name, 5.0)
    seen: set[str] = set()
    with Loop(rt, name, _row(churn_model), limit_s=240) as loop:
        wait_count(sm, name, 3, seen)
        loop.wait_ok(20)  # the three instances serve
        # The load stays; a far higher target makes it low: scale-in under load.
        track_invocations(aas, name, 1e9)
        wait_count(sm, name, 1, seen)
        loop.wait_ok(20)
    assert loop.errors == []
    assert seen == {"InService"}
    done = activities(aas, name)
    assert [a["Description"] for a in done] == [
        "Setting desired instance count to 1.",
        "Setting desired instance count to 3.",
    ]
    wait_for(
        "the scale-in activity to end",
        lambda: activities(aas, name)[0]["StatusCode"] == "Successful",
    )
    up = activities(aas, name)[1]
    assert up["StatusCode"] == "Successful"
    assert up["Cause"].startswith("monitor alarm TargetTracking-" + resource(name))
    assert up["Cause"].endswith("in state ALARM triggered policy invocations")
    assert up["StatusMessage"] == (
        "Successfully set desired instance count to 3. Change successfully fulfilled by sagemaker."
    )
    # The instance count is a series (for charts and the CLI).
    now = dt.datetime.now(dt.UTC)
    stats = autoscaling_points(
        server,
        name,
        "CurrentInstanceCount",
        now - dt.timedelta(minutes=10),
        now + dt.timedelta(minutes=1),
        60,
        ["Maximum", "Minimum"],
    )
    assert max(p["Maximum"] for p in stats) == 3 and min(p["Minimum"] for p in stats) == 1
    shown = cli(server, "scaling", name)
    assert shown.returncode == 0, shown.stderr
    assert f"{resource(name)}  {DIMENSION}  min 1 max 3" in shown.stdout
    assert "policy invocations: target tracking SageMakerVariantInvocationsPerInstance" in (
        shown.stdout
    )
    assert "Successful  Setting desired instance count to 3." in shown.stdout
    assert "min 1, max 3" in shown.stdout and "now: 1 serving, 1 desired" in shown.stdout


def _alarm_on_invocations(server: ModelhostServer, alarm: str, name: str, policy_arn: str) -> None:
    server.client("cloudwatch").put_metric_alarm(
        AlarmName=alarm,
        Namespace="AWS/SageMaker",
        MetricName="Invocations",
        Dimensions=variant_dimensions(name),
        Statistic="Sum",
        Period=1,
        EvaluationPeriods=1,
        Threshold=0,
        ComparisonOperator="GreaterThanThreshold",
        AlarmActions=[policy_arn],
    )


def test_step_policy_scales_one_at_a_time_and_its_cooldown_holds(
    clients: tuple[Any, Any, Any], churn_model: ChurnModel, server: ModelhostServer
) -> None:
    sm, rt, aas = clients
    name = churn_endpoint(sm, churn_model, "step")
    register(aas, name, 1, 3)
    steps = {
        "AdjustmentType": "ChangeInCapacity",
        "StepAdjustments": [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}],
        "Cooldown": 300,  # 5 periods of 1 s
        "MetricAggregationType": "Average",
    }
    policy = put_policy(aas, name, "steps", "StepScaling", steps)
    _alarm_on_invocations(server, f"{name}-busy", name, policy["PolicyARN"])
    described = aas.describe_scaling_policies(
        ServiceNamespace="sagemaker", ResourceId=resource(name)
    )
    assert described["ScalingPolicies"][0]["Alarms"][0]["AlarmName"] == f"{name}-busy"
    seen: set[str] = set()
    with Loop(rt, name, _row(churn_model), limit_s=180) as loop:
        wait_count(sm, name, 3, seen)
    assert loop.errors == [] and seen == {"InService"}
    steps = sorted(activities(aas, name), key=lambda a: a["StartTime"])
    assert [a["Description"] for a in steps] == [
        "Setting desired instance count to 2.",
        "Setting desired instance count to 3.",
    ]
    assert steps[0]["Cause"] == f"monitor alarm {name}-busy in state ALARM triggered policy steps"
    # The second step waited out the cooldown (the server's own clock, not the test's).
    gap = steps[1]["StartTime"] - steps[0]["StartTime"]
    assert gap >= dt.timedelta(seconds=5)


def test_suspended_dynamic_scaling_stops_scale_out_until_resumed(
    clients: tuple[Any, Any, Any], churn_model: ChurnModel, server: ModelhostServer
) -> None:
    sm, rt, aas = clients
    name = churn_endpoint(sm, churn_model, "suspend")
    register(aas, name, 1, 2, SuspendedState={"DynamicScalingOutSuspended": True})
    track_invocations(aas, name, 5.0)

    def periods_seen() -> int:
        end = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
        points = autoscaling_points(
            server, name, "DesiredInstanceCount", start, end, 1, ["Maximum"]
        )
        assert all(p["Maximum"] == 1 for p in points)
        return len(points)

    with Loop(rt, name, _row(churn_model), limit_s=180) as loop:
        loop.wait_ok(5)
        start = dt.datetime.now(dt.UTC)
        # Ten evaluations under load (the high alarm needs three): none scaled out.
        wait_for("ten evaluations under load", lambda: periods_seen() >= 10)
        assert counts(sm, name)[:2] == (1, 1) and activities(aas, name) == []
        register(aas, name, 1, 2, SuspendedState={"DynamicScalingOutSuspended": False})
        wait_count(sm, name, 2, set())
    assert loop.errors == []
    target = aas.describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=[resource(name)]
    )
    assert target["ScalableTargets"][0]["SuspendedState"] == {
        "DynamicScalingInSuspended": False,
        "DynamicScalingOutSuspended": False,
        "ScheduledScalingSuspended": False,
    }


def test_scaling_waits_for_an_update_and_says_so(
    clients: tuple[Any, Any, Any], churn_model: ChurnModel
) -> None:
    sm, rt, aas = clients
    name = churn_endpoint(sm, churn_model, "upd")
    sm.create_endpoint_config(
        EndpointConfigName=f"{name}-v2",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    register(aas, name, 1, 2)
    track_invocations(aas, name, 5.0)
    canary = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "WaitIntervalInSeconds": 10,
                "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1},
            },
            "MaximumExecutionTimeoutInSeconds": 600,
        }
    }
    with Loop(rt, name, _row(churn_model), limit_s=240) as loop:
        loop.wait_ok(5)
        sm.update_endpoint(
            EndpointName=name, EndpointConfigName=f"{name}-v2", DeploymentConfig=canary
        )

        def refused() -> bool:
            return any(a["StatusCode"] == "Failed" for a in activities(aas, name))

        wait_for("a refused scale-out", refused)
        failed = next(a for a in activities(aas, name) if a["StatusCode"] == "Failed")
        assert failed["StatusMessage"] == (
            "Failed to set desired instance count to 2. Reason: The endpoint "
            f"{name} is in Updating status; auto scaling is blocked while an endpoint update "
            "is in progress, and the capacity can change only when it is InService."
        )
        wait_in_service(sm, name)
        # Once the update is done, the next period scales out.
        wait_count(sm, name, 2, set())
    assert loop.errors == []
    assert sm.describe_endpoint(EndpointName=name)["EndpointConfigName"] == f"{name}-v2"


def test_scheduled_action_sets_min_and_a_restart_keeps_counts_policies_and_activities(
    clients: tuple[Any, Any, Any], churn_model: ChurnModel, server: ModelhostServer
) -> None:
    sm, _rt, aas = clients
    name = churn_endpoint(sm, churn_model, "sched")
    register(aas, name, 1, 3)
    track_invocations(aas, name, 1e9)  # never scales out; scale-in stops at MinCapacity
    berlin = dt.datetime.now(dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=1)))
    when = (berlin + dt.timedelta(seconds=3)).replace(tzinfo=None, microsecond=0)
    aas.put_scheduled_action(
        ServiceNamespace="sagemaker",
        ScheduledActionName="morning",
        ResourceId=resource(name),
        ScalableDimension=DIMENSION,
        Schedule=f"at({when.isoformat()})",
        Timezone="Europe/Berlin",  # UTC+1 in December
        ScalableTargetAction={"MinCapacity": 2, "MaxCapacity": 3},
    )
    wait_count(sm, name, 2, set())
    wait_for("the activity to end", lambda: activities(aas, name)[0]["StatusCode"] == "Successful")
    done = activities(aas, name)
    assert done[0]["Cause"] == "minimum capacity was set to 2"
    assert done[1]["Description"] == "Setting min capacity to 2 and max capacity to 3"
    assert done[1]["Cause"] == "scheduled action name morning was triggered"
    target = aas.describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=[resource(name)]
    )
    assert target["ScalableTargets"][0]["MinCapacity"] == 2
    kill_gateway(server)
    sm2, aas2 = restart(server, name)
    wait_count(sm2, name, 2, set())
    assert (
        aas2.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=resource(name))[
            "ScalingPolicies"
        ][0]["PolicyName"]
        == "invocations"
    )
    assert [a["ActivityId"] for a in activities(aas2, name)] == [a["ActivityId"] for a in done]
    actions = aas2.describe_scheduled_actions(
        ServiceNamespace="sagemaker", ResourceId=resource(name)
    )
    assert actions["ScheduledActions"][0]["Timezone"] == "Europe/Berlin"
