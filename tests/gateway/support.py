"""Helpers shared by the gateway's end-to-end tests: models and configs as boto3 users
create them, alarms and deployment events over the native API, multi-container calls."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from modelhost.testing.server import ModelhostServer
from tests.support import XGBOOST_IMAGE


def shared_auth_homes(root: Path, *names: str) -> list[Path]:
    """Gateway homes under `root` that share one auth directory (so one master key): with
    the keys in the database, a client's key works on every gateway, as behind a load
    balancer."""
    (root / "auth").mkdir(mode=0o700)
    homes = []
    for name in names:
        (root / name).mkdir()
        (root / name / "auth").symlink_to(root / "auth")
        homes.append(root / name)
    return homes


def create_model_and_config(sm: Any, name: str, artifact: Path, count: int) -> None:
    sm.create_model(
        ModelName=name, PrimaryContainer={"Image": XGBOOST_IMAGE, "ModelDataUrl": str(artifact)}
    )
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InitialInstanceCount": count,
                "InstanceType": "ml.m5.large",
            }
        ],
    )


def put_5xx_alarm(server: ModelhostServer, name: str, endpoint: str) -> None:
    body = {
        "MetricName": "Invocation5XXErrors",
        "Statistic": "Sum",
        "Period": 1,
        "EvaluationPeriods": 1,
        "Threshold": 1,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "Dimensions": [{"Name": "EndpointName", "Value": endpoint}],
    }
    req = server.signed("PUT", f"/api/alarms/{name}", json.dumps(body).encode())
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert json.loads(resp.read())["AlarmName"] == name


def deployment_events(server: ModelhostServer, endpoint: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(
        server.signed("GET", f"/api/endpoints/{endpoint}/events"), timeout=10
    ) as resp:
        events: list[dict[str, Any]] = json.loads(resp.read())["Events"]
        return events


def create_endpoint(
    sm: Any, name: str, containers: list[dict[str, Any]], mode: str, instances: int = 1
) -> None:
    sm.create_model(ModelName=name, Containers=containers, InferenceExecutionConfig={"Mode": mode})
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InitialInstanceCount": instances,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)


def wait_in_service(sm: Any, name: str) -> None:
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
    )


def metrics_text(server: ModelhostServer) -> str:
    with urllib.request.urlopen(server.signed("GET", "/metrics"), timeout=5) as resp:
        return str(resp.read().decode())


def csv_floats(payload: bytes) -> list[float]:
    return [float(v) for v in payload.decode().replace(",", " ").split()]


def invoke_error(rt: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as info:
        rt.invoke_endpoint(**kwargs)
    err = info.value.response["Error"]
    return err["Code"], err["Message"]


def canary_one_instance(alarm: str) -> dict[str, Any]:
    """A blue/green CANARY DeploymentConfig (one instance, 30 s bake) rolled back by `alarm`."""
    return {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "WaitIntervalInSeconds": 30,
                "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1},
            },
            "MaximumExecutionTimeoutInSeconds": 600,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": alarm}]},
    }
