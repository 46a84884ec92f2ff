"""The Application Auto Scaling API's shapes, validation and error codes through boto3,
and who may call it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from modelhost.testing.server import ModelhostServer, boto3_client
from tests.scaling.support import (
    DIMENSION,
    churn_endpoint,
    put_policy,
    register,
    resource,
    target_tracking,
    track_invocations,
)
from tests.support import ChurnModel, unique

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def aas(server: ModelhostServer) -> Any:
    return server.client("application-autoscaling", retries={"max_attempts": 1})


@pytest.fixture(scope="module")
def endpoint(server: ModelhostServer, churn_model: ChurnModel) -> str:
    return churn_endpoint(server.clients()[0], churn_model, "aas-api")


def _code(call: Callable[[], Any]) -> tuple[str, str]:
    with pytest.raises(ClientError) as info:
        call()
    err = info.value.response["Error"]
    return err["Code"], err["Message"]


def test_register_describe_and_deregister(aas: Any, endpoint: str) -> None:
    arn = register(aas, endpoint, 1, 4, Tags={"team": "ml"})
    assert arn.startswith("arn:aws:application-autoscaling:us-east-1:123456789012:scalable-target/")
    # Registering again updates in place (same ARN); omitted members keep their values.
    again = aas.register_scalable_target(
        ServiceNamespace="sagemaker",
        ResourceId=resource(endpoint),
        ScalableDimension=DIMENSION,
        MaxCapacity=5,
    )
    assert again["ScalableTargetARN"] == arn
    target = aas.describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=[resource(endpoint)]
    )["ScalableTargets"][0]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 5)
    assert target["RoleARN"].endswith("AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint")
    assert target["SuspendedState"]["DynamicScalingInSuspended"] is False
    assert aas.list_tags_for_resource(ResourceARN=arn)["Tags"] == {"team": "ml"}
    aas.tag_resource(ResourceARN=arn, Tags={"cost": "a"})
    aas.untag_resource(ResourceARN=arn, TagKeys=["team"])
    assert aas.list_tags_for_resource(ResourceARN=arn)["Tags"] == {"cost": "a"}
    policy = track_invocations(aas, endpoint, 70.0)
    assert policy["PolicyARN"].endswith(
        f":resource/sagemaker/{resource(endpoint)}:policyName/invocations"
    )
    assert [a["AlarmName"].split("-")[-6] for a in policy["Alarms"]] == ["AlarmHigh", "AlarmLow"]
    aas.deregister_scalable_target(
        ServiceNamespace="sagemaker", ResourceId=resource(endpoint), ScalableDimension=DIMENSION
    )
    # Deregistering removes the target's policies too.
    assert (
        aas.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=resource(endpoint))[
            "ScalingPolicies"
        ]
        == []
    )
    assert (
        _code(lambda: aas.list_tags_for_resource(ResourceARN=arn))[0] == "ResourceNotFoundException"
    )


def test_validation_and_not_found_errors(aas: Any, endpoint: str) -> None:
    def reg(**kw: Any) -> Callable[[], Any]:
        params = {
            "ServiceNamespace": "sagemaker",
            "ResourceId": resource(endpoint),
            "ScalableDimension": DIMENSION,
            "MinCapacity": 1,
            "MaxCapacity": 2,
            **kw,
        }
        return lambda: aas.register_scalable_target(**params)

    code, message = _code(reg(MinCapacity=3))
    assert code == "ValidationException" and "MinCapacity (3) cannot be greater" in message
    code, message = _code(reg(ResourceId="endpoint/x"))
    assert (
        code == "ValidationException"
        and "endpoint/<endpoint-name>/variant/<variant-name>" in message
    )
    code, message = _code(reg(ResourceId=resource("no-such-endpoint")))
    assert code == "ValidationException" and "does not exist" in message
    assert _code(reg(ServiceNamespace="ecs"))[0] == "ValidationException"
    code, message = _code(reg(ScalableDimension="sagemaker:variant:Bogus"))
    assert code == "ValidationException" and "scalableDimension" in message  # botocore's enum
    code, message = _code(lambda: track_invocations(aas, unique("missing"), 70.0))
    assert code == "ObjectNotFoundException"
    assert message.startswith("No scalable target registered for service namespace: sagemaker")
    register(aas, endpoint, 1, 2)
    ecs = target_tracking("ECSServiceAverageCPUUtilization", 1.0)
    code, message = _code(lambda: put_policy(aas, endpoint, "p", "TargetTrackingScaling", ecs))
    assert code == "ValidationException" and "SageMakerVariantInvocationsPerInstance" in message
    overlapping = {
        "AdjustmentType": "ChangeInCapacity",
        "StepAdjustments": [
            {"MetricIntervalLowerBound": 0, "MetricIntervalUpperBound": 10, "ScalingAdjustment": 1},
            {"MetricIntervalLowerBound": 5, "ScalingAdjustment": 2},
        ],
    }
    code, _ = _code(lambda: put_policy(aas, endpoint, "s", "StepScaling", overlapping))
    assert code == "ValidationException"
    code, message = _code(
        lambda: aas.put_scheduled_action(
            ServiceNamespace="sagemaker",
            ScheduledActionName="bad",
            ResourceId=resource(endpoint),
            ScalableDimension=DIMENSION,
            Schedule="cron(0 12 * * *)",
            ScalableTargetAction={"MinCapacity": 1},
        )
    )
    assert code == "ValidationException" and "6 fields" in message
    code, _ = _code(
        lambda: aas.delete_scaling_policy(
            PolicyName="nope",
            ServiceNamespace="sagemaker",
            ResourceId=resource(endpoint),
            ScalableDimension=DIMENSION,
        )
    )
    assert code == "ObjectNotFoundException"
    code, _ = _code(
        lambda: aas.describe_scalable_targets(ServiceNamespace="sagemaker", NextToken="garbage")
    )
    assert code == "InvalidNextTokenException"


def test_paging_and_scheduled_actions(aas: Any, endpoint: str) -> None:
    register(aas, endpoint, 1, 2)
    for i in range(3):
        aas.put_scheduled_action(
            ServiceNamespace="sagemaker",
            ScheduledActionName=f"nightly-{i}",
            ResourceId=resource(endpoint),
            ScalableDimension=DIMENSION,
            Schedule="cron(0 22 ? * MON-FRI *)",
            Timezone="America/New_York",
            ScalableTargetAction={"MinCapacity": 1, "MaxCapacity": 2},
        )
    first = aas.describe_scheduled_actions(
        ServiceNamespace="sagemaker", ResourceId=resource(endpoint), MaxResults=2
    )
    assert len(first["ScheduledActions"]) == 2 and first["NextToken"]
    rest = aas.describe_scheduled_actions(
        ServiceNamespace="sagemaker", ResourceId=resource(endpoint), NextToken=first["NextToken"]
    )
    names = [a["ScheduledActionName"] for a in first["ScheduledActions"] + rest["ScheduledActions"]]
    assert names == ["nightly-0", "nightly-1", "nightly-2"]
    assert rest["ScheduledActions"][0]["ScheduledActionARN"].endswith(
        "scheduledActionName/nightly-2"
    )
    paginator = aas.get_paginator("describe_scheduled_actions")
    pages = paginator.paginate(
        ServiceNamespace="sagemaker", ResourceId=resource(endpoint), MaxResults=1
    )
    assert sum(len(p["ScheduledActions"]) for p in pages) == 3
    aas.delete_scheduled_action(
        ServiceNamespace="sagemaker",
        ScheduledActionName="nightly-1",
        ResourceId=resource(endpoint),
        ScalableDimension=DIMENSION,
    )
    left = aas.describe_scheduled_actions(
        ServiceNamespace="sagemaker", ResourceId=resource(endpoint)
    )
    assert [a["ScheduledActionName"] for a in left["ScheduledActions"]] == [
        "nightly-0",
        "nightly-2",
    ]


def test_deployers_may_scale_invokers_may_not(server: ModelhostServer, endpoint: str) -> None:
    def client(role: str) -> Any:
        key = server.call("POST", "/api/keys", {"Role": role, "Endpoints": "*"})
        creds = (key["AccessKeyId"], key["SecretAccessKey"])
        return boto3_client(
            "application-autoscaling", server.url, creds, retries={"max_attempts": 1}
        )

    invoker = client("invoker")
    code, message = _code(lambda: register(invoker, endpoint, 1, 2))
    assert (
        code == "AccessDeniedException"
        and "application-autoscaling:RegisterScalableTarget" in message
    )
    assert _code(lambda: invoker.describe_scalable_targets(ServiceNamespace="sagemaker"))[0] == (
        "AccessDeniedException"
    )
    register(client("deployer"), endpoint, 1, 2)
