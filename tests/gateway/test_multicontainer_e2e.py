"""Multi-container endpoints (direct invocation) and container groups, end to end.

Real `modelhost serve`, real container processes, boto3 clients.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError

from modelhost.testing.churn import csv_body
from modelhost.testing.server import ModelhostServer
from tests.gateway.support import (
    create_endpoint,
    csv_floats,
    invoke_error,
    metrics_text,
    wait_in_service,
)
from tests.support import XGBOOST_IMAGE, ChurnModel, instance_pids, unique

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def direct_endpoint(
    server: ModelhostServer, churn_model: ChurnModel, churn_model_small: ChurnModel
) -> str:
    sm, _ = server.clients()
    name = unique("mce")
    create_endpoint(
        sm,
        name,
        [
            {
                "ContainerHostname": "big",
                "Image": XGBOOST_IMAGE,
                "ModelDataUrl": str(churn_model.artifact),
            },
            {
                "ContainerHostname": "small",
                "Image": XGBOOST_IMAGE,
                "ModelDataUrl": str(churn_model_small.artifact),
                "Environment": {"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "application/json"},
            },
        ],
        "Direct",
    )
    wait_in_service(sm, name)
    return name


def test_direct_invocation_answers_per_host_name(
    server: ModelhostServer,
    direct_endpoint: str,
    rt: Any,
    churn_model: ChurnModel,
    churn_model_small: ChurnModel,
) -> None:
    X = churn_model.data.X[:20]
    body = csv_body(X)
    big = rt.invoke_endpoint(
        EndpointName=direct_endpoint,
        ContentType="text/csv",
        Body=body,
        TargetContainerHostname="big",
    )
    assert big["InvokedProductionVariant"] == "AllTraffic"
    served = np.array(csv_floats(big["Body"].read()))
    np.testing.assert_allclose(served, churn_model.expected(X), atol=1e-6)

    # The other container: its own model and its own environment (JSON by default).
    small = rt.invoke_endpoint(
        EndpointName=direct_endpoint,
        ContentType="text/csv",
        Body=body,
        TargetContainerHostname="small",
    )
    assert small["ContentType"] == "application/json"
    scores = [p["score"] for p in json.loads(small["Body"].read())["predictions"]]
    np.testing.assert_allclose(scores, churn_model_small.expected(X), atol=1e-6)
    assert not np.allclose(scores, churn_model.expected(X), atol=1e-3)

    sm, _ = server.clients()
    variant = sm.describe_endpoint(EndpointName=direct_endpoint)["ProductionVariants"][0]
    assert [i["SpecifiedImage"] for i in variant["DeployedImages"]] == [XGBOOST_IMAGE] * 2

    text = metrics_text(server)
    for host in ("big", "small"):
        labels = f'ContainerName="{host}",EndpointName="{direct_endpoint}"'
        assert f"ContainerInvocations_total{{{labels}" in text
        assert f"ContainerLatency_count{{{labels}" in text
    assert f'Invocations_total{{EndpointName="{direct_endpoint}",VariantName="AllTraffic"}}' in (
        text
    )


def test_direct_invocation_rejects_missing_unknown_and_bad_host_names(
    direct_endpoint: str, rt: Any
) -> None:
    base = {"EndpointName": direct_endpoint, "ContentType": "text/csv", "Body": b"1,2"}
    code, message = invoke_error(rt, **base)
    assert code == "ValidationError"
    assert "specify TargetContainerHostname (one of big, small)" in message
    code, message = invoke_error(rt, **base, TargetContainerHostname="medium")
    assert code == "ValidationError"
    assert "TargetContainerHostname medium was not found" in message
    code, message = invoke_error(rt, **base, TargetContainerHostname="bad_name")
    assert code == "ValidationError"
    assert "targetContainerHostname" in message and "regular expression" in message


def test_container_error_names_the_container(direct_endpoint: str, rt: Any) -> None:
    code, message = invoke_error(
        rt,
        EndpointName=direct_endpoint,
        ContentType="text/csv",
        Body=b"1,2,3",  # wrong feature count
        TargetContainerHostname="small",
    )
    assert code == "ModelError"
    assert "from small with message" in message


def test_target_container_on_a_single_container_endpoint_is_refused(
    server: ModelhostServer, churn_model: ChurnModel, rt: Any
) -> None:
    from tests.support import deploy

    sm, _ = server.clients()
    name = unique("single")
    deploy(sm, name, str(churn_model.artifact))
    code, message = invoke_error(
        rt, EndpointName=name, ContentType="text/csv", Body=b"1", TargetContainerHostname="x"
    )
    assert code == "ValidationError"
    assert "not a multi-container endpoint" in message


def test_containers_of_an_instance_are_replaced_together(
    server: ModelhostServer, churn_model: ChurnModel, rt: Any
) -> None:
    sm, _ = server.clients()
    name = unique("mce-kill")
    artifact = str(churn_model.artifact)
    create_endpoint(
        sm,
        name,
        [{"Image": XGBOOST_IMAGE, "ModelDataUrl": artifact} for _ in range(3)],
        "Direct",
    )
    wait_in_service(sm, name)
    old = instance_pids(server.home, name)
    assert len(old) == 3  # one process per container
    os.kill(sorted(old)[1], signal.SIGKILL)
    deadline = time.monotonic() + 30
    now: set[int] = set()
    while time.monotonic() < deadline:
        now = instance_pids(server.home, name)
        if len(now) == 3 and not now & old:
            break
        time.sleep(0.3)
    else:
        pytest.fail(f"group not replaced as a whole: old {old}, now {now}")
    # Host names by position, since none were given.
    row = csv_body(churn_model.data.X[:1])
    for host in ("container-1", "container-2", "container-3"):
        deadline = time.monotonic() + 10
        while True:
            try:
                out = rt.invoke_endpoint(
                    EndpointName=name,
                    ContentType="text/csv",
                    Body=row,
                    TargetContainerHostname=host,
                )
                break
            except ClientError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert (
            abs(float(out["Body"].read()) - churn_model.expected(churn_model.data.X[:1])[0]) < 1e-6
        )
    # Scaling out starts whole groups too: 2 instances = 6 processes.
    sm.update_endpoint_weights_and_capacities(
        EndpointName=name,
        DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 2}],
    )
    wait_in_service(sm, name)
    assert len(instance_pids(server.home, name)) == 6
    variant = sm.describe_endpoint(EndpointName=name)["ProductionVariants"][0]
    assert variant["CurrentInstanceCount"] == 2
    sm.delete_endpoint(EndpointName=name)


def test_a_container_that_cannot_start_fails_the_endpoint_naming_it(
    server: ModelhostServer, churn_model: ChurnModel, tmp_path: Path
) -> None:
    sm, _ = server.clients()
    name = unique("mce-bad")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.joblib").write_bytes(b"not a pickle")
    create_endpoint(
        sm,
        name,
        [
            {
                "ContainerHostname": "good",
                "Image": XGBOOST_IMAGE,
                "ModelDataUrl": str(churn_model.artifact),
            },
            {"ContainerHostname": "broken", "Image": "sklearn", "ModelDataUrl": str(broken)},
        ],
        "Serial",
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        desc = sm.describe_endpoint(EndpointName=name)
        if desc["EndpointStatus"] != "Creating":
            break
        time.sleep(0.3)
    assert desc["EndpointStatus"] == "Failed"
    assert "container broken" in desc["FailureReason"], desc["FailureReason"]
    assert instance_pids(server.home, name) == set()


def test_bad_multi_container_models_are_refused_through_boto3(
    server: ModelhostServer, churn_model: ChurnModel
) -> None:
    sm, _ = server.clients()
    c = {"Image": XGBOOST_IMAGE, "ModelDataUrl": str(churn_model.artifact)}
    cases = [
        ({"PrimaryContainer": c, "Containers": [c]}, "not both"),
        ({"Containers": [{**c, "ContainerHostname": "a"}, c]}, "not for Containers.2"),
        ({"Containers": [c] * 16}, "length less than or equal to 15"),
    ]
    for members, text in cases:
        with pytest.raises(ClientError) as info:
            sm.create_model(ModelName=unique("bad-mce"), **members)
        err = info.value.response["Error"]
        assert err["Code"] == "ValidationException"
        assert text in err["Message"]


def test_pipelines_come_back_after_a_restart_and_update_like_any_endpoint(
    tmp_path: Path, churn_model: ChurnModel, churn_model_small: ChurnModel
) -> None:
    from tests.support import FAST_ENV

    X = churn_model.data.X[:3]
    with ModelhostServer(tmp_path / "home", env=FAST_ENV) as srv:
        sm, rt = srv.clients()
        name = unique("mce-restart")
        big = {"ContainerHostname": "big", "Image": XGBOOST_IMAGE}
        create_endpoint(sm, name, [{**big, "ModelDataUrl": str(churn_model.artifact)}], "Direct")
        wait_in_service(sm, name)
        srv.restart()
        sm, rt = srv.clients()
        wait_in_service(sm, name)

        def answer() -> list[float]:
            # After a restart the instances start again in the background (as for any
            # endpoint): retry the seconds in which they come up.
            deadline = time.monotonic() + 30
            while True:
                try:
                    return invoke()
                except ClientError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)

        def invoke() -> list[float]:
            out = rt.invoke_endpoint(
                EndpointName=name,
                ContentType="text/csv",
                Body=csv_body(X),
                TargetContainerHostname="big",
            )
            return csv_floats(out["Body"].read())

        np.testing.assert_allclose(answer(), churn_model.expected(X), atol=1e-6)

        # UpdateEndpoint to another multi-container model: blue/green as usual.
        new = unique("mce-v2")
        sm.create_model(
            ModelName=new,
            Containers=[{**big, "ModelDataUrl": str(churn_model_small.artifact)}],
            InferenceExecutionConfig={"Mode": "Direct"},
        )
        sm.create_endpoint_config(
            EndpointConfigName=new,
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": new,
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.m5.large",
                }
            ],
        )
        sm.update_endpoint(EndpointName=name, EndpointConfigName=new)
        time.sleep(0.5)
        wait_in_service(sm, name)
        np.testing.assert_allclose(answer(), churn_model_small.expected(X), atol=1e-6)
