"""Deployment guardrails: a canary that an alarm rolls back, a linear rollout that completes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from modelhost.testing.churn import csv_rows
from modelhost.testing.server import ModelhostServer
from tests.gateway.support import (
    canary_one_instance,
    create_model_and_config,
    deployment_events,
    put_5xx_alarm,
)
from tests.support import ChurnModel, Loop, unique

pytestmark = pytest.mark.integration


def test_canary_rolls_back_when_the_alarm_fires(
    server: ModelhostServer, churn_model: ChurnModel, failing_artifact: Path
) -> None:
    sm, rt = server.clients(retries={"max_attempts": 1, "mode": "standard"})
    name = unique("canary")
    create_model_and_config(sm, name, churn_model.artifact, 1)
    create_model_and_config(sm, f"{name}-green", failing_artifact, 4)
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
    )
    put_5xx_alarm(server, f"{name}-5xx", name)
    row = csv_rows(churn_model.data.X[:1])[0]
    with Loop(rt, name, row) as loop:
        sm.update_endpoint(
            EndpointName=name,
            EndpointConfigName=f"{name}-green",
            DeploymentConfig=canary_one_instance(f"{name}-5xx"),
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            desc = sm.describe_endpoint(EndpointName=name)
            if desc["EndpointStatus"] != "Updating":
                break
            time.sleep(0.2)
        answered_during = loop.ok + len(loop.errors)
        failed_during = len(loop.errors)
        loop.wait_ok(10)  # answered after the rollback
    assert desc["EndpointStatus"] == "InService"
    assert desc["EndpointConfigName"] == name
    assert f"alarm {name}-5xx went into ALARM" in desc["FailureReason"]
    # Only the canary's share (1 of 4 green instances = 25%) could fail.
    assert 0 < failed_during <= 0.4 * answered_during + 3
    assert all("ModelError" in e for e in loop.errors)
    # After the rollback every request is answered by blue.
    ok_before = loop.ok
    for _ in range(20):
        rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=row)
    assert loop.ok >= ok_before
    statuses = [e["Status"] for e in deployment_events(server, name)]
    assert "ActivatingTraffic" in statuses and "RollingBack" in statuses
    assert statuses[-1] == "InService"


def test_linear_rollout_completes(
    server: ModelhostServer, churn_model: ChurnModel, churn_model_small: ChurnModel
) -> None:
    sm, rt = server.clients(retries={"max_attempts": 1, "mode": "standard"})
    name = unique("linear")
    create_model_and_config(sm, name, churn_model.artifact, 1)
    create_model_and_config(sm, f"{name}-v2", churn_model_small.artifact, 1)
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
    )
    row = csv_rows(churn_model.data.X[:1])[0]
    with Loop(rt, name, row) as loop:
        sm.update_endpoint(
            EndpointName=name,
            EndpointConfigName=f"{name}-v2",
            DeploymentConfig={
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {
                        "Type": "LINEAR",
                        "WaitIntervalInSeconds": 1,
                        "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 50},
                    }
                }
            },
        )
        time.sleep(0.5)
        desc = sm.describe_endpoint(EndpointName=name)
        assert desc["EndpointStatus"] == "Updating"
        stage = desc["PendingDeploymentSummary"]["ProductionVariants"][0]["VariantStatus"][0]
        assert stage["Status"] in ("Creating", "ActivatingTraffic", "Baking")
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
        )
    assert loop.errors == []
    desc = sm.describe_endpoint(EndpointName=name)
    assert desc["EndpointConfigName"] == f"{name}-v2" and "FailureReason" not in desc
    assert (
        desc["LastDeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["Type"]
        == "LINEAR"
    )
    messages = [e["Message"] for e in deployment_events(server, name)]
    assert any(m.startswith("50%") for m in messages)
    assert any(m.startswith("100%") for m in messages)


def test_rollback_alarm_must_exist(sm: Any, churn_model: ChurnModel) -> None:
    name = unique("noalarm")
    create_model_and_config(sm, name, churn_model.artifact, 1)
    with pytest.raises(sm.exceptions.ClientError) as exc:
        sm.create_endpoint(
            EndpointName=name,
            EndpointConfigName=name,
            DeploymentConfig={
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {
                        "Type": "ALL_AT_ONCE",
                        "WaitIntervalInSeconds": 0,
                    }
                },
                "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "nope"}]},
            },
        )
    assert "alarm nope" in exc.value.response["Error"]["Message"]
