"""Helpers of the autoscaling tests: a server with a 1-second scaling period, endpoints,
scalable targets and policies as users write them, the autoscaler's series, a gateway
that dies and comes back, and waits on conditions with deadlines."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from modelhost.testing.server import ModelhostServer
from tests.support import FAST_ENV, ChurnModel, deploy, unique

DIMENSION = "sagemaker:variant:DesiredInstanceCount"
SCALING_ENV = {"MODELHOST_SCALING_PERIOD_S": "1"}


@contextmanager
def scaling_server(
    factory: pytest.TempPathFactory, home: str, **env: str
) -> Iterator[ModelhostServer]:
    """A server in a fresh home, fast and with a 1-second scaling period (plus `env`)."""
    with ModelhostServer(factory.mktemp(home), env={**FAST_ENV, **SCALING_ENV, **env}) as srv:
        yield srv


def churn_endpoint(sm: Any, model: ChurnModel, prefix: str) -> str:
    """A new InService endpoint of the churn model, named `prefix-<random>`."""
    name = unique(prefix)
    deploy(sm, name, str(model.artifact))
    return name


def wait_in_service(sm: Any, endpoint: str, attempts: int = 240) -> None:
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=endpoint, WaiterConfig={"Delay": 0.5, "MaxAttempts": attempts}
    )


def resource(endpoint: str, variant: str = "AllTraffic") -> str:
    return f"endpoint/{endpoint}/variant/{variant}"


def register(
    aas: Any, endpoint: str, low: int, high: int, *, dimension: str = DIMENSION, **extra: Any
) -> str:
    out = aas.register_scalable_target(
        ServiceNamespace="sagemaker",
        ResourceId=resource(endpoint),
        ScalableDimension=dimension,
        MinCapacity=low,
        MaxCapacity=high,
        **extra,
    )
    return str(out["ScalableTargetARN"])


def put_policy(
    aas: Any,
    endpoint: str,
    name: str,
    policy_type: str,
    config: dict[str, Any],
    dimension: str = DIMENSION,
) -> dict[str, Any]:
    """PutScalingPolicy of `policy_type` ("TargetTrackingScaling", "StepScaling") with
    `config` as its configuration member."""
    out: dict[str, Any] = aas.put_scaling_policy(
        PolicyName=name,
        ServiceNamespace="sagemaker",
        ResourceId=resource(endpoint),
        ScalableDimension=dimension,
        PolicyType=policy_type,
        **{f"{policy_type}PolicyConfiguration": config},
    )
    return out


def target_tracking(metric: str, target: float, **extra: Any) -> dict[str, Any]:
    """A target-tracking configuration on a predefined metric."""
    return {
        "TargetValue": target,
        "PredefinedMetricSpecification": {"PredefinedMetricType": metric},
        **extra,
    }


def track_invocations(
    aas: Any, endpoint: str, target: float, out_s: int = 60, in_s: int = 60
) -> dict[str, Any]:
    """The seeds' policy: target tracking on SageMakerVariantInvocationsPerInstance."""
    config = target_tracking(
        "SageMakerVariantInvocationsPerInstance",
        target,
        ScaleOutCooldown=out_s,
        ScaleInCooldown=in_s,
    )
    return put_policy(aas, endpoint, "invocations", "TargetTrackingScaling", config)


def variant_dimensions(endpoint: str) -> list[dict[str, str]]:
    return [
        {"Name": "EndpointName", "Value": endpoint},
        {"Name": "VariantName", "Value": "AllTraffic"},
    ]


def autoscaling_points(
    server: ModelhostServer,
    endpoint: str,
    metric: str,
    start: dt.datetime,
    end: dt.datetime,
    period_s: int,
    statistics: list[str],
) -> list[dict[str, Any]]:
    """The datapoints of one of the autoscaler's own series (modelhost/Autoscaling)."""
    points: list[dict[str, Any]] = server.client("cloudwatch").get_metric_statistics(
        Namespace="modelhost/Autoscaling",
        MetricName=metric,
        Dimensions=variant_dimensions(endpoint),
        StartTime=start,
        EndTime=end,
        Period=period_s,
        Statistics=statistics,
    )["Datapoints"]
    return points


def kill_gateway(server: ModelhostServer) -> None:
    """The gateway dies without a chance to clean up (its instances exit with it)."""
    assert server.proc is not None
    server.proc.kill()
    server.proc.wait()
    server.proc = None


def restart(server: ModelhostServer, endpoint: str) -> tuple[Any, Any]:
    """Start the killed gateway again; (sagemaker, application-autoscaling) clients once
    `endpoint` is InService again."""
    server.start()
    sm = server.clients()[0]
    wait_in_service(sm, endpoint, attempts=120)
    return sm, server.client("application-autoscaling")


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


def activities(aas: Any, endpoint: str, dimension: str | None = DIMENSION) -> list[dict[str, Any]]:
    """The endpoint's scaling activities, newest first (of every dimension with None)."""
    which = {"ScalableDimension": dimension} if dimension else {}
    out: list[dict[str, Any]] = aas.describe_scaling_activities(
        ServiceNamespace="sagemaker", ResourceId=resource(endpoint), **which
    )["ScalingActivities"]
    return out
