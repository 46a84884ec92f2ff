"""RollingUpdatePolicy: instances replaced batch by batch, rolled back by an alarm."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from modelhost.testing.churn import csv_rows
from modelhost.testing.server import ModelhostServer
from tests.gateway.support import create_model_and_config, deployment_events, put_5xx_alarm
from tests.support import XGBOOST_IMAGE, ChurnModel, Loop, unique

pytestmark = pytest.mark.integration


def _rolling(batch: int, wait_s: int, alarm: str | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "RollingUpdatePolicy": {
            "MaximumBatchSize": {"Type": "INSTANCE_COUNT", "Value": batch},
            "WaitIntervalInSeconds": wait_s,
            "MaximumExecutionTimeoutInSeconds": 600,
        }
    }
    if alarm:
        config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": alarm}]}
    return config


def _wait_not_updating(sm: Any, name: str, limit_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + limit_s
    while True:
        desc: dict[str, Any] = sm.describe_endpoint(EndpointName=name)
        if desc["EndpointStatus"] != "Updating" or time.monotonic() > deadline:
            return desc
        time.sleep(0.2)


def test_rolling_update_replaces_instances_batch_by_batch(
    server: ModelhostServer, churn_model: ChurnModel, churn_model_small: ChurnModel
) -> None:
    sm, rt = server.clients(retries={"max_attempts": 1, "mode": "standard"})
    name = unique("rolling")
    create_model_and_config(sm, name, churn_model.artifact, 2)
    create_model_and_config(sm, f"{name}-v2", churn_model_small.artifact, 2)
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
    )
    X = churn_model.data.X[:1]
    row = csv_rows(X)[0]
    with Loop(rt, name, row) as loop:
        sm.update_endpoint(
            EndpointName=name, EndpointConfigName=f"{name}-v2", DeploymentConfig=_rolling(1, 1)
        )
        desc = _wait_not_updating(sm, name)
    assert loop.errors == []
    assert desc["EndpointStatus"] == "InService" and "FailureReason" not in desc
    assert desc["EndpointConfigName"] == f"{name}-v2"
    assert desc["ProductionVariants"][0]["CurrentInstanceCount"] == 2
    # Both models answered while the fleets overlapped; only the new one answers now.
    old, new = float(churn_model.expected(X)[0]), float(churn_model_small.expected(X)[0])
    assert {round(a, 5) for a in loop.answers} <= {round(old, 5), round(new, 5)}
    body = rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=row)["Body"]
    assert float(body.read()) == pytest.approx(new, rel=1e-5)
    messages = [e["Message"] for e in deployment_events(server, name)]
    assert any(m.startswith("rolling step 1/2") for m in messages)
    assert any(m.startswith("rolling step 2/2: AllTraffic 2 new / 0 old") for m in messages)


def test_rolling_update_rolls_back_on_alarm(
    server: ModelhostServer, churn_model: ChurnModel, failing_artifact: Path
) -> None:
    sm, rt = server.clients(retries={"max_attempts": 1, "mode": "standard"})
    name = unique("rollback")
    create_model_and_config(sm, name, churn_model.artifact, 2)
    create_model_and_config(sm, f"{name}-bad", failing_artifact, 2)
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
    )
    put_5xx_alarm(server, f"{name}-5xx", name)
    row = csv_rows(churn_model.data.X[:1])[0]
    with Loop(rt, name, row) as loop:
        sm.update_endpoint(
            EndpointName=name,
            EndpointConfigName=f"{name}-bad",
            DeploymentConfig=_rolling(1, 30, f"{name}-5xx"),
        )
        desc = _wait_not_updating(sm, name)
        answered, failed = loop.ok + len(loop.errors), len(loop.errors)
    assert desc["EndpointStatus"] == "InService"
    assert desc["EndpointConfigName"] == name
    assert f"alarm {name}-5xx went into ALARM" in desc["FailureReason"]
    # One new instance of two took traffic before the alarm fired: at most about half.
    assert 0 < failed <= 0.6 * answered + 3
    assert all("ModelError" in e for e in loop.errors)
    # The old fleet is back at full size and answers everything.
    assert desc["ProductionVariants"][0]["CurrentInstanceCount"] == 2
    for _ in range(10):
        rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=row)
    statuses = [e["Status"] for e in deployment_events(server, name)]
    assert "RollingBack" in statuses and statuses[-1] == "InService"


def test_rolling_update_needs_the_same_variants(sm: Any, churn_model: ChurnModel) -> None:
    name = unique("rollvar")
    create_model_and_config(sm, name, churn_model.artifact, 1)
    sm.create_model(
        ModelName=f"{name}-other",
        PrimaryContainer={"Image": XGBOOST_IMAGE, "ModelDataUrl": str(churn_model.artifact)},
    )
    sm.create_endpoint_config(
        EndpointConfigName=f"{name}-other",
        ProductionVariants=[
            {
                "VariantName": "Other",
                "ModelName": f"{name}-other",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
    )
    with pytest.raises(sm.exceptions.ClientError) as exc:
        sm.update_endpoint(
            EndpointName=name, EndpointConfigName=f"{name}-other", DeploymentConfig=_rolling(1, 0)
        )
    assert "same production variants" in exc.value.response["Error"]["Message"]
    with pytest.raises(sm.exceptions.ClientError) as exc:
        sm.update_endpoint(
            EndpointName=name,
            EndpointConfigName=name,
            DeploymentConfig={
                **_rolling(1, 0),
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {
                        "Type": "ALL_AT_ONCE",
                        "WaitIntervalInSeconds": 0,
                    }
                },
            },
        )
    assert "not both" in exc.value.response["Error"]["Message"]
