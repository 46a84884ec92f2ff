"""The endpoint's own view of a load test: its metrics for the test's window, read through
the CloudWatch API (a boto3 `cloudwatch` client, so a real SageMaker endpoint works too).

ModelLatency (Average and p99, microseconds on the wire, milliseconds here) comes from
`AWS/SageMaker`; CPUUtilization and MemoryUtilization (Average over the variant's
instances) from `/aws/sagemaker/Endpoints`. One series per variant.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

SAGEMAKER = "AWS/SageMaker"
ENDPOINTS = "/aws/sagemaker/Endpoints"
# (namespace, metric, statistic, scale, label)
SERIES = (
    (SAGEMAKER, "ModelLatency", "Average", 1e-3, "ModelLatency avg (ms)"),
    (SAGEMAKER, "ModelLatency", "p99", 1e-3, "ModelLatency p99 (ms)"),
    (ENDPOINTS, "CPUUtilization", "Average", 1.0, "CPUUtilization (%)"),
    (ENDPOINTS, "MemoryUtilization", "Average", 1.0, "MemoryUtilization (%)"),
)


def _variants(cw: Any, endpoint: str) -> list[str]:
    listed = cw.list_metrics(
        Namespace=SAGEMAKER,
        MetricName="Invocations",
        Dimensions=[{"Name": "EndpointName", "Value": endpoint}],
    )["Metrics"]
    return sorted(
        {d["Value"] for m in listed for d in m["Dimensions"] if d["Name"] == "VariantName"}
    )


def _points(
    cw: Any, endpoint: str, variant: str, series: tuple[Any, ...], window: dict[str, Any]
) -> list[list[float]]:
    namespace, metric, stat, scale, _label = series
    stats: dict[str, Any] = (
        {"ExtendedStatistics": [stat]} if stat.startswith("p") else {"Statistics": [stat]}
    )
    got = cw.get_metric_statistics(
        Namespace=namespace,
        MetricName=metric,
        Dimensions=[
            {"Name": "EndpointName", "Value": endpoint},
            {"Name": "VariantName", "Value": variant},
        ],
        **window,
        **stats,
    )
    out = []
    for p in got["Datapoints"]:
        value = p.get("ExtendedStatistics", {}).get(stat) if stat.startswith("p") else p.get(stat)
        if value is not None:
            out.append([p["Timestamp"].timestamp(), float(value) * scale])
    return sorted(out)


def endpoint_metrics(
    cw: Any, endpoint: str, start_t: float, end_t: float, period_s: int = 1
) -> dict[str, dict[str, list[list[float]]]]:
    """label → variant → [[timestamp, value], ...] for the window [start_t, end_t]."""
    window = {
        "StartTime": dt.datetime.fromtimestamp(start_t - period_s, dt.UTC),
        "EndTime": dt.datetime.fromtimestamp(end_t + period_s, dt.UTC),
        "Period": period_s,
    }
    out: dict[str, dict[str, list[list[float]]]] = {}
    for variant in _variants(cw, endpoint):
        for series in SERIES:
            points = _points(cw, endpoint, variant, series, window)
            out.setdefault(series[4], {})[variant] = points
    return out
