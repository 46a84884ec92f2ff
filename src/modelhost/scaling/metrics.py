"""The datapoints policies read, from the metric series, and the series the autoscaler
writes: the instance counts (to chart them) and ConcurrentRequestsPerModel (sampled).

A datapoint is one complete evaluation period (`scaling_period_s`, whole seconds). The
invocation metric SageMakerVariantInvocationsPerInstance is the Sum of
InvocationsPerInstance per period, 0 when nothing was invoked (modelhost knows there were
no invocations, so the scale-in alarm is not left without data); the other metrics leave
a period without data missing.
"""

from __future__ import annotations

from typing import Any

from modelhost.scaling.policy_rules import PREDEFINED
from modelhost.telemetry.alarm_spec import AlarmSpec
from modelhost.telemetry.alarms import watched_keys
from modelhost.telemetry.metric_store import MetricKey, MetricStore
from modelhost.telemetry.series import SAGEMAKER

COUNTS_NAMESPACE = "modelhost/Autoscaling"
ZERO_WHEN_MISSING = frozenset({"InvocationsPerInstance"})


def count_key(metric: str, endpoint: str, variant: str) -> MetricKey:
    """DesiredInstanceCount and CurrentInstanceCount of a variant, once per period."""
    return MetricKey.of(COUNTS_NAMESPACE, metric, EndpointName=endpoint, VariantName=variant)


def concurrency_key(endpoint: str, variant: str) -> MetricKey:
    return MetricKey.of(
        SAGEMAKER, "ConcurrentRequestsPerModel", EndpointName=endpoint, VariantName=variant
    )


def datapoints(
    series: MetricStore,
    keys: list[MetricKey],
    statistic: str,
    now: float,
    period_s: int,
    count: int,
    zero_when_missing: bool = False,
) -> list[float | None]:
    """The last `count` complete periods' values of `keys` (merged), oldest first."""
    end = int(now) // period_s * period_s
    start = end - count * period_s
    found = {p.second: p for p in series.query(keys, start, end, period_s)}
    out: list[float | None] = []
    for slot in range(start, end, period_s):
        p = found.get(slot)
        value = None if p is None else p.statistic(statistic)
        out.append(0.0 if value is None and zero_when_missing else value)
    return out


def tracking_points(
    series: MetricStore,
    config: dict[str, Any],
    endpoint: str,
    variant: str,
    now: float,
    period_s: int,
    count: int,
) -> list[float | None]:
    """The datapoints of a target-tracking policy's metric (predefined or customized)."""
    predefined = config.get("PredefinedMetricSpecification")
    if predefined is not None:
        namespace, metric, statistic = PREDEFINED[predefined["PredefinedMetricType"]]
        key = MetricKey.of(namespace, metric, EndpointName=endpoint, VariantName=variant)
        zero = metric in ZERO_WHEN_MISSING
        return datapoints(series, [key], statistic, now, period_s, count, zero)
    custom = config["CustomizedMetricSpecification"]
    dims = {d["Name"]: d["Value"] for d in custom.get("Dimensions") or []}
    key = MetricKey.of(custom["Namespace"], custom["MetricName"], **dims)
    return datapoints(series, [key], custom["Statistic"], now, period_s, count)


def alarm_points(series: MetricStore, spec: AlarmSpec, now: float) -> list[float]:
    """The present datapoints an alarm evaluated (its last EvaluationPeriods)."""
    keys = watched_keys(spec, series)
    points = datapoints(series, keys, spec.statistic, now, spec.period_s, spec.evaluation_periods)
    return [p for p in points if p is not None]
