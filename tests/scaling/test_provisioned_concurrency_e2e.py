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
from tests.scaling.support import (
    activities,
    put_policy,
    register,
    scaling_server,
    target_tracking,
    wait_for,
    wait_in_service,
)
from tests.support import XGBOOST_IMAGE, ChurnModel, Loop, unique

pytestmark = pytest.mark.integration

PROVISIONED = "sagemaker:variant:DesiredProvisionedConcurrency"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelhostServer]:
    with scaling_server(
        tmp_path_factory, "provisioned-home", MODELHOST_SERVERLESS_IDLE_S="2"
    ) as srv:
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
    wait_in_service(sm, name, attempts=120)
    return name


def _provisioned(sm: Any, name: str) -> int:
    variant = sm.describe_endpoint(EndpointName=name)["ProductionVariants"][0]
    return int(variant["CurrentServerlessConfig"]["ProvisionedConcurrency"])


def test_load_raises_provisioned_concurrency_and_idling_lowers_it(
    server: ModelhostServer, churn_model: ChurnModel
) -> None:
    sm, rt = server.clients(retries={"max_attempts": 1, "mode": "standard"})
    aas = server.client("application-autoscaling")
    name = _deploy(sm, str(churn_model.artifact), ProvisionedConcurrency=1)
    register(aas, name, 1, 3, dimension=PROVISIONED)
    config = target_tracking(
        "SageMakerVariantProvisionedConcurrencyUtilization",
        0.5,
        ScaleOutCooldown=60,
        ScaleInCooldown=60,
    )
    put_policy(aas, name, "provisioned", "TargetTrackingScaling", config, PROVISIONED)
    row = csv_rows(churn_model.data.X[:1])[0]
    with Loop(rt, name, row, limit_s=240) as loop:
        loop.wait_ok(5)
        wait_for("provisioned concurrency to go up", lambda: _provisioned(sm, name) >= 2)
        loop.wait_ok(5)
    assert loop.errors == []
    # The reconciler starts the extra warm instance after the desired count goes up.
    wait_for(
        "the extra warm instance to start",
        lambda: (
            sm.describe_endpoint(EndpointName=name)["ProductionVariants"][0]["CurrentInstanceCount"]
            >= 2
        ),
    )
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
    descriptions = [a["Description"] for a in activities(aas, name, PROVISIONED)]
    assert descriptions[0] == "Setting desired provisioned concurrency to 1."
    raised = {f"Setting desired provisioned concurrency to {n}." for n in (2, 3)}
    assert raised & set(descriptions)
    wait_for(
        "the activities to end",
        lambda: all(a["StatusCode"] == "Successful" for a in activities(aas, name, None)),
    )


def test_only_serverless_variants_with_provisioned_concurrency_scale_it(
    server: ModelhostServer, churn_model: ChurnModel
) -> None:
    sm, _rt = server.clients()
    aas = server.client("application-autoscaling")
    on_demand = _deploy(sm, str(churn_model.artifact))
    with pytest.raises(ClientError) as err:
        register(aas, on_demand, 1, 2, dimension=PROVISIONED)
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "no ProvisionedConcurrency" in err.value.response["Error"]["Message"]
    warm = _deploy(sm, str(churn_model.artifact), ProvisionedConcurrency=1)
    with pytest.raises(ClientError) as err:
        register(aas, warm, 1, 5, dimension=PROVISIONED)
    assert (
        "cannot exceed the variant's MaxConcurrency (4)" in err.value.response["Error"]["Message"]
    )
    with pytest.raises(ClientError) as err:
        register(aas, warm, 1, 2)
    assert "is serverless" in err.value.response["Error"]["Message"]
