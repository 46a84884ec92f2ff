"""The rules of PutScalingPolicy and PutScheduledAction beyond botocore's model.

Each check raises ValidationException naming the member and the rule. The specs they
return are what Describe answers (the request, normalized) and what the autoscaler runs.
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

from modelhost.errors import LimitExceededException, ValidationException
from modelhost.scaling import schedule
from modelhost.scaling.book import NAMESPACE

MAX_PER_TARGET = 50
# Predefined metrics for endpoint variants -> (namespace, metric, statistic). The metric
# of the serverless dimension is here too, read once the variant publishes it.
PREDEFINED: dict[str, tuple[str, str, str]] = {
    "SageMakerVariantInvocationsPerInstance": ("AWS/SageMaker", "InvocationsPerInstance", "Sum"),
    "SageMakerVariantConcurrentRequestsPerModelHighResolution": (
        "AWS/SageMaker",
        "ConcurrentRequestsPerModel",
        "Average",
    ),
    "SageMakerVariantProvisionedConcurrencyUtilization": (
        "AWS/SageMaker",
        "ServerlessProvisionedConcurrencyUtilization",
        "Average",
    ),
}
_STATISTICS = ("Average", "Minimum", "Maximum", "SampleCount", "Sum")


def check_count(existing: int) -> None:
    if existing >= MAX_PER_TARGET:
        raise LimitExceededException(
            f"A scalable target can have at most {MAX_PER_TARGET} scaling policies and "
            f"{MAX_PER_TARGET} scheduled actions."
        )


def policy_spec(p: dict[str, Any]) -> dict[str, Any]:
    kind = p.get("PolicyType") or "StepScaling"
    spec = {
        "PolicyName": p["PolicyName"],
        "ServiceNamespace": NAMESPACE,
        "ResourceId": p["ResourceId"],
        "ScalableDimension": p["ScalableDimension"],
        "PolicyType": kind,
    }
    if kind == "PredictiveScaling":
        raise ValidationException(
            "PredictiveScaling is not supported for the sagemaker service namespace."
        )
    if kind == "TargetTrackingScaling":
        config = p.get("TargetTrackingScalingPolicyConfiguration")
        if not config:
            raise ValidationException(
                "TargetTrackingScalingPolicyConfiguration is required when PolicyType is "
                "TargetTrackingScaling."
            )
        _check_tracking(config)
        spec["TargetTrackingScalingPolicyConfiguration"] = config
        return spec
    config = p.get("StepScalingPolicyConfiguration")
    if not config:
        raise ValidationException(
            "StepScalingPolicyConfiguration is required when PolicyType is StepScaling."
        )
    _check_steps(config)
    spec["StepScalingPolicyConfiguration"] = config
    return spec


def _check_tracking(config: dict[str, Any]) -> None:
    predefined = config.get("PredefinedMetricSpecification")
    custom = config.get("CustomizedMetricSpecification")
    if (predefined is None) == (custom is None):
        raise ValidationException(
            "TargetTrackingScalingPolicyConfiguration takes exactly one of "
            "PredefinedMetricSpecification and CustomizedMetricSpecification."
        )
    if float(config["TargetValue"]) <= 0:
        raise ValidationException("TargetValue must be greater than 0.")
    for member in ("ScaleOutCooldown", "ScaleInCooldown"):
        if config.get(member, 0) < 0:
            raise ValidationException(f"{member} must not be negative.")
    if predefined is not None and predefined["PredefinedMetricType"] not in PREDEFINED:
        raise ValidationException(
            f"PredefinedMetricType {predefined['PredefinedMetricType']} is not valid for "
            f"sagemaker:variant resources; use one of {', '.join(sorted(PREDEFINED))}."
        )
    if custom is not None:
        if custom.get("Metrics"):
            raise ValidationException(
                "CustomizedMetricSpecification.Metrics (metric math) is not supported by "
                "modelhost; give MetricName, Namespace, Dimensions and Statistic."
            )
        for member in ("MetricName", "Namespace", "Statistic"):
            if not custom.get(member):
                raise ValidationException(f"CustomizedMetricSpecification.{member} is required.")
        if custom["Statistic"] not in _STATISTICS:
            raise ValidationException(
                f"CustomizedMetricSpecification.Statistic must be one of {', '.join(_STATISTICS)}."
            )


def _check_steps(config: dict[str, Any]) -> None:
    if not config.get("AdjustmentType"):
        raise ValidationException("StepScalingPolicyConfiguration.AdjustmentType is required.")
    steps = config.get("StepAdjustments") or []
    if not steps:
        raise ValidationException(
            "StepScalingPolicyConfiguration.StepAdjustments must have at least one step."
        )
    if (
        config.get("MinAdjustmentMagnitude") is not None
        and config["AdjustmentType"] != "PercentChangeInCapacity"
    ):
        raise ValidationException(
            "MinAdjustmentMagnitude is valid only with AdjustmentType PercentChangeInCapacity."
        )
    intervals = []
    for i, s in enumerate(steps, 1):
        low = s.get("MetricIntervalLowerBound")
        high = s.get("MetricIntervalUpperBound")
        if low is None and high is None and len(steps) > 1:
            raise ValidationException(f"StepAdjustments.{i}: only a single step may be unbounded.")
        lo = float("-inf") if low is None else float(low)
        hi = float("inf") if high is None else float(high)
        if lo >= hi:
            raise ValidationException(
                f"StepAdjustments.{i}: MetricIntervalLowerBound must be less than "
                "MetricIntervalUpperBound."
            )
        intervals.append((lo, hi))
    intervals.sort()
    for (_, prev_hi), (lo, _) in itertools.pairwise(intervals):
        if lo < prev_hi:
            raise ValidationException("StepAdjustments: the step intervals must not overlap.")


def tracking_alarms(resource_id: str, region: str, account_id: str) -> list[dict[str, str]]:
    """The two alarms AWS names for a target-tracking policy (evaluated by the autoscaler)."""
    out = []
    for which in ("AlarmHigh", "AlarmLow"):
        name = f"TargetTracking-{resource_id}-{which}-{uuid.uuid4()}"
        out.append(
            {
                "AlarmName": name,
                "AlarmARN": f"arn:aws:cloudwatch:{region}:{account_id}:alarm:{name}",
            }
        )
    return out


def scheduled_spec(p: dict[str, Any], old: dict[str, Any] | None, least: int = 1) -> dict[str, Any]:
    spec = dict(old or {})
    for member in (
        "ScheduledActionName",
        "ResourceId",
        "ScalableDimension",
        "Schedule",
        "Timezone",
        "StartTime",
        "EndTime",
        "ScalableTargetAction",
    ):
        if p.get(member) is not None:
            spec[member] = p[member]
    spec["ServiceNamespace"] = NAMESPACE
    if not spec.get("Schedule"):
        raise ValidationException("Schedule is required for a new scheduled action.")
    schedule.parse(spec["Schedule"], spec.get("Timezone"))
    action = spec.get("ScalableTargetAction") or {}
    low, high = action.get("MinCapacity"), action.get("MaxCapacity")
    if low is None and high is None:
        raise ValidationException("ScalableTargetAction needs MinCapacity, MaxCapacity or both.")
    if low is not None and high is not None and low > high:
        raise ValidationException(
            f"ScalableTargetAction: MinCapacity ({low}) cannot be greater than MaxCapacity "
            f"({high})."
        )
    if low is not None and low < least:
        raise ValidationException(
            f"ScalableTargetAction.MinCapacity must be at least {least}"
            + ("." if least == 0 else " (0 only for an asynchronous endpoint).")
        )
    return spec
