"""Application Auto Scaling of a serverless variant's ProvisionedConcurrency
(`sagemaker:variant:DesiredProvisionedConcurrency`) through boto3 against a real server
with a 1-second period: load raises the warm count, idling lowers it again."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from modelhost.testing.churn import csv_rows
from modelhost.testing.server import ModelhostServer
from tests.scaling.support import SCALING_ENV, resource, wait_for
from tests.support import FAST_ENV, XGBOOST_IMAGE, ChurnModel, Loop, unique

pytestmark = pytest.mark.integration

PROVISIONED = "sagemaker:variant:DesiredProvisionedConcurrency"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelhostServer]:
    home = tmp_path_factory.mktemp("provisioned-home")
    env = {**FAST_ENV, **SCALING_ENV, "MODELHOST_SERVERLESS_IDLE_S": "2"}
    with ModelhostServer(home, env=env) as srv:
        yield srv


def _deploy(sm: Any, artifact: str, **serverless: int) -> str:
    name = unique("pc")
    sm.create_model(
        ModelName=name, PrimaryContainer={"Image": XGBOOST_IMAGE, "ModelDataUrl": artifact}
    )
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "ServerlessConfig": {"MemorySizeInMB": 1024, "MaxConcurrency": 4, **serverless},
            }
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
    )
    return name


def _provisioned(sm: Any, name: str) -> int:
    variant = sm.describe_endpoint(EndpointName=name)["ProductionVariants"][0]
    return int(variant["CurrentServerlessConfig"]["ProvisionedConcurrency"])


def _register(aas: Any, name: str, dim: str, low: int, high: int) -> None:
    aas.register_scalable_target(
        ServiceNamespace="sagemaker",
        ResourceId=resource(name),
        ScalableDimension=dim,
        MinCapacity=low,
        MaxCapacity=high,
    )


def test_load_raises_provisioned_concurrency_and_idling_lowers_it(
    server: ModelhostServer, churn_model: ChurnModel
) -> None:
    sm, rt = server.clients(retries={"max_attempts": 1, "mode": "standard"})
    aas = server.client("application-autoscaling")
    name = _deploy(sm, str(churn_model.artifact), ProvisionedConcurrency=1)
    _register(aas, name, PROVISIONED, 1, 3)
    aas.put_scaling_policy(
        PolicyName="provisioned",
        ServiceNamespace="sagemaker",
        ResourceId=resource(name),
        ScalableDimension=PROVISIONED,
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 0.5,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "SageMakerVariantProvisionedConcurrencyUtilization"
            },
            "ScaleOutCooldown": 60,
            "ScaleInCooldown": 60,
        },
    )
    row = csv_rows(churn_model.data.X[:1])[0]
    with Loop(rt, name, row, limit_s=240) as loop:
        loop.wait_ok(5)
        wait_for("provisioned concurrency to go up", lambda: _provisioned(sm, name) >= 2)
        loop.wait_ok(5)
    assert loop.errors == []
    variant = sm.describe_endpoint(EndpointName=name)["ProductionVariants"][0]
    assert variant["CurrentInstanceCount"] >= 2
    assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "InService"
    # Idle: the scale-in alarm's 15 datapoints pass, the warm count goes back to min.
    wait_for("provisioned concurrency to go down", lambda: _provisioned(sm, name) == 1)
    wait_for(
        "the extra warm instance to stop",
        lambda: (
            sm.describe_endpoint(EndpointName=name)["ProductionVariants"][0]["CurrentInstanceCount"]
            == 1
        ),
    )
    acts = aas.describe_scaling_activities(
        ServiceNamespace="sagemaker", ResourceId=resource(name), ScalableDimension=PROVISIONED
    )["ScalingActivities"]
    descriptions = [a["Description"] for a in acts]
    assert descriptions[0] == "Setting desired provisioned concurrency to 1."
    raised = {f"Setting desired provisioned concurrency to {n}." for n in (2, 3)}
    assert raised & set(descriptions)
    wait_for(
        "the activities to end",
        lambda: all(
            a["StatusCode"] == "Successful"
            for a in aas.describe_scaling_activities(
                ServiceNamespace="sagemaker", ResourceId=resource(name)
            )["ScalingActivities"]
        ),
    )


def test_only_serverless_variants_with_provisioned_concurrency_scale_it(
    server: ModelhostServer, churn_model: ChurnModel
) -> None:
    sm, _rt = server.clients()
    aas = server.client("application-autoscaling")
    on_demand = _deploy(sm, str(churn_model.artifact))
    with pytest.raises(ClientError) as err:
        _register(aas, on_demand, PROVISIONED, 1, 2)
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "no ProvisionedConcurrency" in err.value.response["Error"]["Message"]
    warm = _deploy(sm, str(churn_model.artifact), ProvisionedConcurrency=1)
    with pytest.raises(ClientError) as err:
        _register(aas, warm, PROVISIONED, 1, 5)
    assert (
        "cannot exceed the variant's MaxConcurrency (4)" in err.value.response["Error"]["Message"]
    )
    with pytest.raises(ClientError) as err:
        _register(aas, warm, "sagemaker:variant:DesiredInstanceCount", 1, 2)
    assert "is serverless" in err.value.response["Error"]["Message"]
