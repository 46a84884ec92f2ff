"""Inference Recommender's rules, pure: requests, configurations, metrics of a benchmark,
thresholds and the Pareto front of cost per inference vs p99 latency."""

from __future__ import annotations

from typing import Any

import pytest

from modelhost.errors import ValidationException
from modelhost.loadtest import recommendation as rules
from modelhost.loadtest.prices import load_prices

SEEDS = load_prices("seeds-2021")
PAYLOAD = {"PayloadConfig": {"SamplePayloadUrl": "s3://b/p.tar.gz"}}


def request(**input_config: Any) -> dict[str, Any]:
    cfg = {"ModelName": "m", "ContainerConfig": dict(PAYLOAD), **input_config}
    return {"JobName": "j1", "JobType": "Default", "RoleArn": "r", "InputConfig": cfg}


def result(rps: float, p99: float, model_ms: float | None = 4.0) -> dict[str, Any]:
    metrics = {"ModelLatency avg (ms)": {"AllTraffic": [[1.0, model_ms]]}} if model_ms else {}
    return {
        "StartTime": 1.0,
        "EndTime": 11.0,
        "Summary": {
            "RequestsPerSecond": rps,
            "Failures": 0,
            "LatencyMs": {"p50": p99 / 2, "p90": p99 * 0.8, "p99": p99, "max": p99 * 2},
        },
        "EndpointMetrics": {**metrics, "CPUUtilization (%)": {"AllTraffic": [[1.0, 50.0]]}},
    }


def test_configurations_per_job_type() -> None:
    found = rules.configurations(request())
    assert [c.instance_type for c in found] == list(rules.DEFAULT_INSTANCE_TYPES)
    supported = request(
        ContainerConfig={**PAYLOAD, "SupportedInstanceTypes": ["ml.c5.large", "ml.c5.large"]}
    )
    assert rules.configurations(supported) == [rules.Configuration("ml.c5.large")]
    ranges = {
        "CategoricalParameterRanges": [
            {"Name": "SAGEMAKER_MODEL_SERVER_WORKERS", "Value": ["1", "2"]},
            {"Name": "MH_BATCH", "Value": ["on"]},
        ]
    }
    advanced = {
        **request(
            EndpointConfigurations=[
                {"InstanceType": "ml.m5.large", "EnvironmentParameterRanges": ranges},
                {"InstanceType": "ml.c5.large"},
            ]
        ),
        "JobType": "Advanced",
    }
    assert [c.key() for c in rules.configurations(advanced)] == [
        "ml.m5.large SAGEMAKER_MODEL_SERVER_WORKERS=1 MH_BATCH=on",
        "ml.m5.large SAGEMAKER_MODEL_SERVER_WORKERS=2 MH_BATCH=on",
        "ml.c5.large",
    ]
    env = rules.configurations(advanced)[1].environment
    assert rules.model_configuration(env)["EnvironmentParameters"][0] == {
        "Key": "SAGEMAKER_MODEL_SERVER_WORKERS",
        "ValueType": "String",
        "Value": "2",
    }


def test_phases_default_and_advanced() -> None:
    (default,) = rules.phases(request(), 7.0)
    assert default.duration_s == 7.0
    phases = [{"InitialNumberOfUsers": 2, "SpawnRate": 1, "DurationInSeconds": 30}]
    advanced = {**request(TrafficPattern={"Phases": phases}), "JobType": "Advanced"}
    assert rules.phases(advanced, 7.0)[0].initial_users == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"JobType": "Fast"}, "JobType"),
        ({"JobName": "-bad"}, "JobName"),
        ({"InputConfig": {"ModelName": "m"}}, "SamplePayloadUrl"),
        ({"InputConfig": {"ModelPackageVersionArn": "arn"}}, "ModelName is required"),
        ({"JobType": "Advanced"}, "EndpointConfigurations is required"),
        (
            {"StoppingConditions": {"ModelLatencyThresholds": [{"Percentile": "P42"}]}},
            "Percentile",
        ),
    ],
)
def test_bad_requests_name_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationException, match=message):
        rules.check_request({**request(), **change})


def test_serverless_configurations_are_refused_for_now() -> None:
    serverless = request(EndpointConfigurations=[{"ServerlessConfig": {"MemorySizeInMB": 2048}}])
    with pytest.raises(ValidationException, match="serverless"):
        rules.check_request(serverless)


def test_a_benchmarks_metrics_are_consistent() -> None:
    bench = rules.benchmark("ml.m5.2xlarge", "ep", result(100.0, 20.0), SEEDS, 3.4)
    m = bench["Metrics"]
    assert m["MaxInvocations"] == 6000 and m["ModelLatency"] == 4 and m["ModelSetupTime"] == 3
    assert m["CostPerHour"] == 0.538
    assert m["CostPerInference"] == pytest.approx(0.538 / (100 * 3600))
    assert m["CpuUtilization"] == 50.0 and "MemoryUtilization" not in m
    assert bench["EndpointConfiguration"]["InstanceType"] == "ml.m5.2xlarge"
    unpriced = rules.benchmark("ml.z9.large", "ep", result(100.0, 20.0, None), SEEDS, 1.0)
    assert "CostPerHour" not in unpriced["Metrics"]
    assert unpriced["Metrics"]["ModelLatency"] == 10  # the client's p50 without the endpoint's


def test_pareto_front() -> None:
    points = [(1.0, 50.0), (2.0, 10.0), (3.0, 60.0), (1.0, 40.0), (0.5, 100.0)]
    assert rules.pareto_front(points) == [1, 3, 4]


def test_recommendations_keep_the_thresholds_and_put_the_front_first() -> None:
    benches = [
        rules.benchmark("ml.m5.2xlarge", "a", result(100.0, 30.0), SEEDS, 1),  # dominated
        rules.benchmark("ml.c5.xlarge", "b", result(100.0, 20.0), SEEDS, 1),  # cheapest, fast
        rules.benchmark("ml.m5.4xlarge", "c", result(400.0, 5.0), SEEDS, 1),  # fastest
        rules.benchmark("ml.c5.large", "d", result(100.0, 900.0), SEEDS, 1),  # too slow
    ]
    stopping = {"ModelLatencyThresholds": [{"Percentile": "P99", "ValueInMilliseconds": 100}]}
    recs = rules.recommendations("job", benches, stopping)
    names = [r["EndpointConfiguration"]["EndpointName"] for r in recs]
    assert names == ["b", "c", "a"]
    assert [r["ParetoOptimal"] for r in recs] == [True, True, False]
    assert recs[0]["RecommendationId"] == "job/1"
    assert recs[0]["Note"] == rules.LOCAL_NOTE


def test_threshold_watch_breaks_after_two_intervals_over() -> None:
    stopping = {"ModelLatencyThresholds": [{"Percentile": "P99", "ValueInMilliseconds": 50}]}
    watch = rules.ThresholdWatch(stopping)
    line = (
        "   {t}.0s  users    2  requests     100  failures     0  req/s     50.0  p50 {a}  p99 {b}"
    )
    assert not watch.line(line.format(t=1, a=10, b=80))
    assert not watch.line(line.format(t=2, a=10, b=40))  # back under: the count restarts
    assert not watch.line(line.format(t=3, a=10, b=60))
    assert not watch.line(line.format(t=4, a="-", b="-"))  # an interval without requests
    assert watch.line(line.format(t=5, a=10, b=70))
    assert watch.broken is not None and "p99 70 ms over the threshold of 50 ms" in watch.broken
    assert not rules.ThresholdWatch(None).line(line.format(t=1, a=10, b=10**6))
