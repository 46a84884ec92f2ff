"""Inference Recommender's rules as pure functions: the request, the configurations a job
tests, the metrics of one benchmark, the thresholds and the Pareto front.

A benchmark is one load test of one configuration (an instance type, one instance) on a
temporary endpoint (recommender.py runs them). Locally an instance gets its type's vCPUs as
cores of this machine (fleet/cpu_share.py), all of them for a type larger than the machine,
so such types measure as this machine; each recommendation says so.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

from modelhost.errors import ValidationException
from modelhost.loadtest.prices import PriceTable, cost_per_hour, cost_per_inference
from modelhost.loadtest.spec import Phase, constant_phase, parse_phases
from modelhost.loadtest.stats import progress_latencies

JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,63}$")
DEFAULT_INSTANCE_TYPES = ("ml.c5.xlarge", "ml.m5.xlarge", "ml.m5.2xlarge")
MAX_CONFIGURATIONS = 20
MAX_SEARCHED_CONFIGURATIONS = 200
"""A searched job (`searched`) measures a fraction of its configurations, so it may list more."""
PERCENTILES = {"P50": "p50", "P90": "p90", "P99": "p99"}
LOCAL_NOTE = (
    "modelhost ran every configuration on this machine, each instance pinned to its type's "
    "vCPUs (all of this machine's cores when the type has more) and limited to its type's "
    "memory (no limit when the type has as much as this machine or more): types larger "
    "than this machine measure as this machine; the costs are the price table's."
)
ECHOED = ("JobDescription", "RoleArn", "InputConfig", "StoppingConditions", "OutputConfig")


def _payload_config(cfg: dict[str, Any]) -> dict[str, Any]:
    payload = (cfg.get("ContainerConfig") or {}).get("PayloadConfig") or {}
    if not payload.get("SamplePayloadUrl"):
        raise ValidationException(
            "InputConfig.ContainerConfig.PayloadConfig.SamplePayloadUrl is required: a tar.gz "
            "of sample payload files (s3://, file:// or a path)."
        )
    return dict(payload)


def check_request(p: dict[str, Any]) -> None:
    """Validate CreateInferenceRecommendationsJob beyond botocore's shapes, naming the field."""
    if not JOB_NAME.match(str(p.get("JobName", ""))):
        raise ValidationException("JobName must match [a-zA-Z0-9](-*[a-zA-Z0-9]){0,63}.")
    if p.get("JobType") not in ("Default", "Advanced"):
        raise ValidationException("JobType must be Default or Advanced.")
    cfg = p.get("InputConfig") or {}
    if cfg.get("ModelPackageVersionArn") or not cfg.get("ModelName"):
        raise ValidationException(
            "InputConfig.ModelName is required (model packages are not supported by modelhost)."
        )
    _payload_config(cfg)
    for i, ec in enumerate(cfg.get("EndpointConfigurations") or []):
        if ec.get("ServerlessConfig") or not ec.get("InstanceType"):
            raise ValidationException(
                f"InputConfig.EndpointConfigurations[{i}]: give an InstanceType "
                "(serverless configurations are not supported yet)."
            )
    if p["JobType"] == "Advanced":
        if not cfg.get("EndpointConfigurations"):
            raise ValidationException(
                "InputConfig.EndpointConfigurations is required for an Advanced job."
            )
        phases(p, 1.0)
    limit = MAX_SEARCHED_CONFIGURATIONS if searched(p) else MAX_CONFIGURATIONS
    if len(configurations(p)) > limit:
        raise ValidationException(f"A job of this kind tests at most {limit} configurations.")
    for t in (p.get("StoppingConditions") or {}).get("ModelLatencyThresholds") or []:
        if t.get("Percentile") not in PERCENTILES or not isinstance(
            t.get("ValueInMilliseconds"), int
        ):
            raise ValidationException(
                "StoppingConditions.ModelLatencyThresholds: Percentile must be one of "
                f"{', '.join(PERCENTILES)} with an integer ValueInMilliseconds."
            )


@dataclass(frozen=True)
class Configuration:
    """One configuration a job measures: an instance type and environment variables for the
    model's container (from EnvironmentParameterRanges, e.g. SAGEMAKER_MODEL_SERVER_WORKERS)."""

    instance_type: str
    environment: tuple[tuple[str, str], ...] = ()

    def key(self) -> str:
        return self.instance_type + "".join(f" {k}={v}" for k, v in self.environment)


def _environments(ranges: dict[str, Any] | None) -> list[tuple[tuple[str, str], ...]]:
    """Every combination of the categorical parameter ranges ([()] without any)."""
    params = (ranges or {}).get("CategoricalParameterRanges") or []
    names = [str(r["Name"]) for r in params]
    values = [[str(v) for v in r.get("Value") or []] for r in params]
    return [tuple(zip(names, combo, strict=True)) for combo in itertools.product(*values)]


def configurations(p: dict[str, Any]) -> list[Configuration]:
    """The configurations a job tests, in order: Advanced names its instance types (each
    with every combination of its EnvironmentParameterRanges), Default takes the container's
    SupportedInstanceTypes or a small default set."""
    cfg = p.get("InputConfig") or {}
    if p.get("JobType") == "Advanced":
        out = [
            Configuration(ec["InstanceType"], env)
            for ec in cfg.get("EndpointConfigurations") or []
            for env in _environments(ec.get("EnvironmentParameterRanges"))
        ]
    else:
        container = cfg.get("ContainerConfig") or {}
        types = container.get("SupportedInstanceTypes") or DEFAULT_INSTANCE_TYPES
        out = [Configuration(t) for t in types]
    return list(dict.fromkeys(out))


def searched(p: dict[str, Any]) -> bool:
    """Advanced jobs whose EnvironmentParameterRanges give a parameter several values are
    searched (recommendation_search.py), not measured in full."""
    if p.get("JobType") != "Advanced":
        return False
    return any(
        len({str(v) for v in r.get("Value") or []}) > 1
        for ec in (p.get("InputConfig") or {}).get("EndpointConfigurations") or []
        for r in (ec.get("EnvironmentParameterRanges") or {}).get("CategoricalParameterRanges")
        or []
    )


def phases(p: dict[str, Any], default_duration_s: float) -> tuple[Phase, ...]:
    """The traffic of every benchmark: an Advanced job's Phases, else a steady default."""
    pattern = (p.get("InputConfig") or {}).get("TrafficPattern") or {}
    if pattern.get("Phases"):
        return parse_phases(pattern["Phases"])
    if p.get("JobType") == "Advanced":
        raise ValidationException("InputConfig.TrafficPattern.Phases is required for Advanced.")
    return (constant_phase(4, 4.0, default_duration_s),)


def content_type(p: dict[str, Any]) -> str:
    types = _payload_config(p["InputConfig"]).get("SupportedContentTypes") or ["text/csv"]
    return str(types[0])


def benchmark(
    instance_type: str,
    endpoint: str,
    result: dict[str, Any],
    table: PriceTable,
    setup_s: float,
    environment: tuple[tuple[str, str], ...] = (),
) -> dict[str, Any]:
    """One configuration's RecommendationJobInferenceBenchmark from its load test."""
    summary = result["Summary"]
    rps = float(summary["RequestsPerSecond"])
    latency = summary["LatencyMs"]
    model_ms = _average(result, "ModelLatency avg (ms)")
    metrics: dict[str, Any] = {
        "MaxInvocations": round(rps * 60),
        "ModelLatency": round(model_ms if model_ms is not None else latency["p50"] or 0),
        "ModelSetupTime": round(setup_s),
    }
    for label, key in (
        ("CPUUtilization (%)", "CpuUtilization"),
        ("MemoryUtilization (%)", "MemoryUtilization"),
    ):
        value = _average(result, label)
        if value is not None:
            metrics[key] = round(value, 3)
    try:
        hourly = cost_per_hour(table, instance_type)
        metrics["CostPerHour"] = hourly
        if rps > 0:
            metrics["CostPerInference"] = cost_per_inference(hourly, rps)
    except ValidationException:
        pass  # an unpriced type still gets its measured figures
    return {
        "Metrics": metrics,
        "EndpointMetrics": {
            "MaxInvocations": metrics["MaxInvocations"],
            "ModelLatency": metrics["ModelLatency"],
        },
        "EndpointConfiguration": {
            "EndpointName": endpoint,
            "VariantName": "AllTraffic",
            "InstanceType": instance_type,
            "InitialInstanceCount": 1,
        },
        "ModelConfiguration": model_configuration(environment),
        "InvocationStartTime": result["StartTime"],
        "InvocationEndTime": result["EndTime"],
        # modelhost's own members (boto3 ignores them): client percentiles and failures.
        "LatencyMs": latency,
        "Failures": summary["Failures"],
    }


def model_configuration(environment: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    if not environment:
        return {}
    return {
        "EnvironmentParameters": [
            {"Key": k, "ValueType": "String", "Value": v} for k, v in environment
        ]
    }


def model_copy(
    described: dict[str, Any], name: str, environment: tuple[tuple[str, str], ...]
) -> dict[str, Any]:
    """CreateModel parameters for a copy NAME of a DescribeModel answer with `environment`
    added to its container."""
    container = described.get("PrimaryContainer")
    if not container:
        raise ValidationException("EnvironmentParameterRanges need a single-container model.")
    env = {**(container.get("Environment") or {}), **dict(environment)}
    params: dict[str, Any] = {
        "ModelName": name,
        "PrimaryContainer": {**container, "Environment": env},
    }
    if described.get("ExecutionRoleArn"):
        params["ExecutionRoleArn"] = described["ExecutionRoleArn"]
    return params


def _average(result: dict[str, Any], label: str) -> float | None:
    values = [
        v
        for points in result.get("EndpointMetrics", {}).get(label, {}).values()
        for _t, v in points
    ]
    return sum(values) / len(values) if values else None


def meets(bench: dict[str, Any], stopping: dict[str, Any] | None) -> bool:
    """Whether a benchmark keeps within the job's ModelLatencyThresholds (and had traffic)."""
    if bench["Metrics"]["MaxInvocations"] <= 0:
        return False
    for t in (stopping or {}).get("ModelLatencyThresholds") or []:
        measured = bench["LatencyMs"].get(PERCENTILES[t["Percentile"]])
        if measured is None or measured > t["ValueInMilliseconds"]:
            return False
    return True


class ThresholdWatch:
    """Watches a load test's progress lines against ModelLatencyThresholds: a percentile over
    its threshold in `STRIKES` intervals in a row breaks the configuration (`broken` says why).
    Only the percentiles the progress lines carry (p50, p99) are watched; every threshold is
    checked again on the final figures (`meets`)."""

    STRIKES = 2

    def __init__(self, stopping: dict[str, Any] | None) -> None:
        self.thresholds = {
            PERCENTILES[t["Percentile"]]: t["ValueInMilliseconds"]
            for t in (stopping or {}).get("ModelLatencyThresholds") or []
        }
        self.strikes = dict.fromkeys(self.thresholds, 0)
        self.broken: str | None = None

    def line(self, text: str) -> bool:
        """Read one progress line; True once the configuration is broken."""
        measured = progress_latencies(text)
        for key, limit in self.thresholds.items():
            value = measured.get(key)
            if value is None:
                continue
            self.strikes[key] = self.strikes[key] + 1 if value > limit else 0
            if self.strikes[key] >= self.STRIKES and self.broken is None:
                self.broken = (
                    f"stopped early: {key} {value:g} ms over the threshold of {limit} ms in "
                    f"{self.STRIKES} intervals in a row"
                )
        return self.broken is not None


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both (cost per inference, p99 latency)."""
    front = []
    for i, (cost, latency) in enumerate(points):
        dominated = any(
            (c <= cost and lat <= latency) and (c < cost or lat < latency)
            for j, (c, lat) in enumerate(points)
            if j != i
        )
        if not dominated:
            front.append(i)
    return front


def recommendations(job: str, benches: list[dict[str, Any]], stopping: Any) -> list[dict[str, Any]]:
    """The benchmarks that meet the thresholds as InferenceRecommendations: the Pareto front
    of cost per inference vs p99 latency first (cheapest first), then the rest by cost."""
    kept = [b for b in benches if meets(b, stopping)]
    points = [
        (b["Metrics"].get("CostPerInference", float("inf")), b["LatencyMs"].get("p99") or 0.0)
        for b in kept
    ]
    front = set(pareto_front(points))
    order = sorted(range(len(kept)), key=lambda i: (i not in front, points[i][0]))
    out = []
    for n, i in enumerate(order, 1):
        b = kept[i]
        out.append(
            {
                "RecommendationId": f"{job}/{n}",
                "Metrics": b["Metrics"],
                "EndpointConfiguration": b["EndpointConfiguration"],
                "ModelConfiguration": b["ModelConfiguration"],
                "InvocationStartTime": b["InvocationStartTime"],
                "InvocationEndTime": b["InvocationEndTime"],
                "ParetoOptimal": i in front,
                "LatencyMs": b["LatencyMs"],
                "Note": LOCAL_NOTE,
            }
        )
    return out
