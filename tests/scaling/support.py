"""Helpers of the autoscaling tests: scalable targets and policies as users write them,
and waits on conditions with deadlines."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

DIMENSION = "sagemaker:variant:DesiredInstanceCount"
SCALING_ENV = {"MODELHOST_SCALING_PERIOD_S": "1"}


def resource(endpoint: str, variant: str = "AllTraffic") -> str:
    return f"endpoint/{endpoint}/variant/{variant}"


def register(aas: Any, endpoint: str, low: int, high: int, **extra: Any) -> str:
    out = aas.register_scalable_target(
        ServiceNamespace="sagemaker",
        ResourceId=resource(endpoint),
        ScalableDimension=DIMENSION,
        MinCapacity=low,
        MaxCapacity=high,
        **extra,
    )
    return str(out["ScalableTargetARN"])


def track_invocations(
    aas: Any, endpoint: str, target: float, out_s: int = 60, in_s: int = 60
) -> dict[str, Any]:
    """The seeds' policy: target tracking on SageMakerVariantInvocationsPerInstance."""
    out: dict[str, Any] = aas.put_scaling_policy(
        PolicyName="invocations",
        ServiceNamespace="sagemaker",
        ResourceId=resource(endpoint),
        ScalableDimension=DIMENSION,
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": target,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
            },
            "ScaleOutCooldown": out_s,
            "ScaleInCooldown": in_s,
        },
    )
    return out


def counts(sm: Any, endpoint: str) -> tuple[int, int, str]:
    """(CurrentInstanceCount, DesiredInstanceCount, EndpointStatus) of the first variant."""
    desc = sm.describe_endpoint(EndpointName=endpoint)
    v = desc["ProductionVariants"][0]
    return v["CurrentInstanceCount"], v["DesiredInstanceCount"], desc["EndpointStatus"]


def wait_for(what: str, check: Callable[[], bool], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.25)


def wait_count(sm: Any, endpoint: str, n: int, seen: set[str], timeout_s: float = 120.0) -> None:
    """Until n instances serve; `seen` collects every EndpointStatus met on the way."""

    def check() -> bool:
        current, desired, status = counts(sm, endpoint)
        seen.add(status)
        return current == n and desired == n

    wait_for(f"{endpoint} to serve with {n} instances", check, timeout_s)


def activities(aas: Any, endpoint: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = aas.describe_scaling_activities(
        ServiceNamespace="sagemaker", ResourceId=resource(endpoint), ScalableDimension=DIMENSION
    )["ScalingActivities"]
    return out
