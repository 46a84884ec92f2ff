"""An alarm definition: the members of CloudWatch's PutMetricAlarm, checked field by field.

In `AWS/SageMaker` and `/aws/sagemaker/Endpoints` the metric must be one SageMaker
publishes and the dimensions must name an EndpointName; other namespaces (the user's own,
from PutMetricData) take any metric and dimensions. A `Statistic` is one of CloudWatch's
five; a percentile goes in `ExtendedStatistic` (`p99`, `p99.9`), as CloudWatch has it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from modelhost.errors import ValidationException
from modelhost.resources.names import ENDPOINT_NAME_RE
from modelhost.telemetry.metric_store import MetricKey, percentile
from modelhost.telemetry.series import ENDPOINTS, INSTANCE_METRICS, SAGEMAKER, SAGEMAKER_METRICS

STATISTICS = ("Average", "Sum", "SampleCount", "Minimum", "Maximum")
COMPARISONS = {
    "GreaterThanOrEqualToThreshold": (lambda v, t: v >= t, "greater than or equal to"),
    "GreaterThanThreshold": (lambda v, t: v > t, "greater than"),
    "LessThanThreshold": (lambda v, t: v < t, "less than"),
    "LessThanOrEqualToThreshold": (lambda v, t: v <= t, "less than or equal to"),
}
MISSING = ("missing", "notBreaching", "breaching", "ignore")
KNOWN_METRICS = {SAGEMAKER: SAGEMAKER_METRICS, ENDPOINTS: INSTANCE_METRICS}


def _need(body: dict[str, Any], key: str) -> Any:
    if body.get(key) is None:
        raise ValidationException(f"{key} is required.")
    return body[key]


def _integer(body: dict[str, Any], key: str, default: int | None = None, low: int = 1) -> int:
    value = body.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValidationException(f"{key} must be an integer >= {low}.")
    return value


def _dimensions(body: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    raw = body.get("Dimensions") or []
    if not isinstance(raw, list) or not all(
        isinstance(d, dict) and isinstance(d.get("Name"), str) and isinstance(d.get("Value"), str)
        for d in raw
    ):
        raise ValidationException("Dimensions must be a list of {Name, Value} objects.")
    dims = {d["Name"]: d["Value"] for d in raw}
    # The native API's shorthand members.
    for name in ("EndpointName", "VariantName"):
        if isinstance(body.get(name), str):
            dims[name] = body[name]
    return tuple(sorted(dims.items()))


def _strings(body: dict[str, Any], key: str) -> tuple[str, ...]:
    value = body.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationException(f"{key} must be a list of strings.")
    return tuple(value)


@dataclass(frozen=True)
class AlarmSpec:
    """An alarm definition; `statistic` is a CloudWatch statistic or a percentile."""

    name: str
    namespace: str
    metric: str
    dimensions: tuple[tuple[str, str], ...]
    statistic: str
    period_s: int
    evaluation_periods: int
    datapoints_to_alarm: int
    threshold: float
    comparison: str
    treat_missing: str = "missing"
    description: str = ""
    actions_enabled: bool = True
    actions: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False)
    unit: str | None = None

    @property
    def key(self) -> MetricKey:
        return MetricKey(self.namespace, self.metric, self.dimensions)

    @property
    def endpoint(self) -> str | None:
        return self.key.dimension("EndpointName")

    @property
    def variant(self) -> str | None:
        return self.key.dimension("VariantName")

    @property
    def extended(self) -> bool:
        return self.statistic not in STATISTICS

    @classmethod
    def parse(cls, body: dict[str, Any]) -> AlarmSpec:
        """From a PutMetricAlarm-shaped object; ValidationException names the field."""
        dims = _dimensions(body)
        name = _need(body, "AlarmName")
        if not isinstance(name, str) or not 1 <= len(name) <= 255:
            raise ValidationException("AlarmName must be a string of 1 to 255 characters.")
        namespace, metric = _metric(body, dims)
        statistic = cls._statistic(body)
        comparison = _need(body, "ComparisonOperator")
        if not isinstance(comparison, str) or comparison not in COMPARISONS:
            raise ValidationException(
                f"ComparisonOperator must be one of {', '.join(COMPARISONS)}."
            )
        threshold = _threshold(body)
        treat = body.get("TreatMissingData") or "missing"
        if not isinstance(treat, str) or treat not in MISSING:
            raise ValidationException(f"TreatMissingData must be one of {', '.join(MISSING)}.")
        periods = _integer(body, "EvaluationPeriods")
        to_alarm = _integer(body, "DatapointsToAlarm", periods)
        if to_alarm > periods:
            raise ValidationException("DatapointsToAlarm must not exceed EvaluationPeriods.")
        description = body.get("AlarmDescription") or ""
        enabled = body.get("ActionsEnabled", True)
        actions = {
            k: _strings(body, k) for k in ("AlarmActions", "OKActions", "InsufficientDataActions")
        }
        return cls(
            name,
            namespace,
            metric,
            dims,
            statistic,
            _integer(body, "Period", 60),
            periods,
            to_alarm,
            threshold,
            comparison,
            treat,
            str(description),
            bool(enabled),
            {k: v for k, v in actions.items() if v},
            body.get("Unit") if isinstance(body.get("Unit"), str) else None,
        )

    @staticmethod
    def _statistic(body: dict[str, Any]) -> str:
        statistic, extended = body.get("Statistic"), body.get("ExtendedStatistic")
        if statistic is not None and extended is not None:
            raise ValidationException("Statistic and ExtendedStatistic are mutually exclusive.")
        if extended is not None:
            if not isinstance(extended, str) or percentile(extended) is None:
                raise ValidationException("ExtendedStatistic must be a percentile like p99.")
            return extended
        if statistic is None:
            raise ValidationException("Statistic is required (or ExtendedStatistic).")
        if not isinstance(statistic, str) or statistic not in STATISTICS:
            raise ValidationException(f"Statistic must be one of {', '.join(STATISTICS)}.")
        return statistic

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "AlarmName": self.name,
            "Namespace": self.namespace,
            "MetricName": self.metric,
            "Dimensions": [{"Name": n, "Value": v} for n, v in self.dimensions],
            "ExtendedStatistic" if self.extended else "Statistic": self.statistic,
            "Period": self.period_s,
            "EvaluationPeriods": self.evaluation_periods,
            "DatapointsToAlarm": self.datapoints_to_alarm,
            "Threshold": self.threshold,
            "ComparisonOperator": self.comparison,
            "TreatMissingData": self.treat_missing,
            "ActionsEnabled": self.actions_enabled,
            "AlarmActions": list(self.actions.get("AlarmActions", ())),
            "OKActions": list(self.actions.get("OKActions", ())),
            "InsufficientDataActions": list(self.actions.get("InsufficientDataActions", ())),
        }
        if self.description:
            out["AlarmDescription"] = self.description
        if self.unit:
            out["Unit"] = self.unit
        return out


def _metric(body: dict[str, Any], dims: tuple[tuple[str, str], ...]) -> tuple[str, str]:
    """Namespace and MetricName; SageMaker's namespaces need a known metric and an endpoint."""
    namespace = body.get("Namespace") or SAGEMAKER
    if not isinstance(namespace, str) or not 1 <= len(namespace) <= 255:
        raise ValidationException("Namespace must be a string of 1 to 255 characters.")
    metric = _need(body, "MetricName")
    known = KNOWN_METRICS.get(namespace)
    if not isinstance(metric, str) or (known is not None and metric not in known):
        raise ValidationException(
            f"MetricName must be one of {', '.join(known or ())} in {namespace}."
        )
    endpoint = dict(dims).get("EndpointName")
    if known is not None and (endpoint is None or not ENDPOINT_NAME_RE.match(endpoint)):
        raise ValidationException(
            "Dimensions must name a valid EndpointName (and may name a VariantName)."
        )
    return namespace, metric


def _threshold(body: dict[str, Any]) -> float:
    threshold = _need(body, "Threshold")
    if (
        not isinstance(threshold, int | float)
        or isinstance(threshold, bool)
        or not math.isfinite(threshold)
    ):
        raise ValidationException("Threshold must be a number.")
    return float(threshold)
