"""Inference recommendations jobs through boto3 against a real server: a Default and an
Advanced job complete, their costs are consistent, their steps are listed, and a
recommendation's EndpointConfiguration deploys as it is. Each load test lasts seconds."""

from __future__ import annotations

import json
import tarfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from modelhost.testing.churn import csv_rows
from modelhost.testing.server import ModelhostServer
from tests.support import FAST_ENV, XGBOOST_IMAGE, ChurnModel, cli, sdk_session, unique

pytestmark = pytest.mark.integration

ROLE = "arn:aws:iam::123456789012:role/modelhost"


@pytest.fixture(scope="module")
def rec_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelhostServer]:
    env = {**FAST_ENV, "MODELHOST_RECOMMENDER_TEST_DURATION_S": "3"}
    with ModelhostServer(tmp_path_factory.mktemp("rec-home"), env=env) as srv:
        yield srv


@pytest.fixture(scope="module")
def model(rec_server: ModelhostServer, churn_model: ChurnModel) -> str:
    sm, _ = rec_server.clients()
    name = unique("rec-model")
    sm.create_model(
        ModelName=name,
        PrimaryContainer={"Image": XGBOOST_IMAGE, "ModelDataUrl": str(churn_model.artifact)},
        ExecutionRoleArn=ROLE,
    )
    return name


@pytest.fixture(scope="module")
def payloads(tmp_path_factory: pytest.TempPathFactory, churn_model: ChurnModel) -> str:
    root = tmp_path_factory.mktemp("payloads")
    archive = root / "payloads.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for i, row in enumerate(csv_rows(churn_model.data.X[:4])):
            path = root / f"row{i}.csv"
            path.write_text(row + "\n")
            tar.add(path, arcname=path.name)
    return f"file://{archive}"


def wait_done(sm: Any, name: str, timeout_s: float = 240.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got: dict[str, Any] = sm.describe_inference_recommendations_job(JobName=name)
        if got["Status"] in ("COMPLETED", "FAILED", "STOPPED"):
            return got
        time.sleep(1)
    raise AssertionError(f"job {name} did not finish in {timeout_s} s")


def wait_gone(sm: Any, prefix: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while sm.list_endpoints(NameContains=prefix)["Endpoints"]:
        assert time.monotonic() < deadline, f"temporary endpoints {prefix}* were not deleted"
        time.sleep(0.5)


def check_costs(rec: dict[str, Any]) -> None:
    metrics = rec["Metrics"]
    assert metrics["MaxInvocations"] > 0 and metrics["ModelSetupTime"] >= 0
    invocations_per_hour = metrics["MaxInvocations"] * 60
    assert metrics["CostPerInference"] == pytest.approx(
        metrics["CostPerHour"] / invocations_per_hour, rel=0.02
    )


def test_default_job_recommends_and_its_configuration_deploys(
    rec_server: ModelhostServer, model: str, payloads: str, churn_model: ChurnModel
) -> None:
    sm, rt = rec_server.clients()
    job = unique("rec-default")
    types = ["ml.c5.xlarge", "ml.m5.large"]
    sm.create_inference_recommendations_job(
        JobName=job,
        JobType="Default",
        RoleArn=ROLE,
        InputConfig={
            "ModelName": model,
            "ContainerConfig": {
                "PayloadConfig": {
                    "SamplePayloadUrl": payloads,
                    "SupportedContentTypes": ["text/csv"],
                },
                "SupportedInstanceTypes": types,
            },
        },
    )
    got = wait_done(sm, job)
    assert got["Status"] == "COMPLETED", got.get("FailureReason")
    recs = got["InferenceRecommendations"]
    assert {r["EndpointConfiguration"]["InstanceType"] for r in recs} == set(types)
    for rec in recs:
        check_costs(rec)
    listed = sm.list_inference_recommendations_jobs(NameContains=job)[
        "InferenceRecommendationsJobs"
    ]
    assert [j["JobName"] for j in listed] == [job] and listed[0]["ModelName"] == model
    steps = sm.list_inference_recommendations_job_steps(JobName=job)["Steps"]
    assert len(steps) == 2 and all(s["Status"] == "COMPLETED" for s in steps)
    # The temporary endpoints go away; the first recommendation deploys as it is.
    wait_gone(sm, job[:40])
    config = recs[0]["EndpointConfiguration"]
    name = unique("rec-deployed")
    variant = {k: config[k] for k in ("VariantName", "InstanceType", "InitialInstanceCount")}
    sm.create_endpoint_config(
        EndpointConfigName=name, ProductionVariants=[{**variant, "ModelName": model}]
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
    )
    body = csv_rows(churn_model.data.X[:1])[0]
    answer = rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=body)
    assert float(answer["Body"].read()) == pytest.approx(
        churn_model.expected(churn_model.data.X[:1])[0], rel=1e-5
    )


def test_advanced_job_with_phases_and_a_latency_threshold(
    rec_server: ModelhostServer, model: str, payloads: str
) -> None:
    sm, _ = rec_server.clients()
    job = unique("rec-adv")
    sm.create_inference_recommendations_job(
        JobName=job,
        JobType="Advanced",
        RoleArn=ROLE,
        InputConfig={
            "ModelName": model,
            "ContainerConfig": {"PayloadConfig": {"SamplePayloadUrl": payloads}},
            "EndpointConfigurations": [
                {
                    "InstanceType": "ml.c5.large",
                    "EnvironmentParameterRanges": {
                        "CategoricalParameterRanges": [
                            {"Name": "SAGEMAKER_MODEL_SERVER_WORKERS", "Value": ["1", "2"]}
                        ]
                    },
                }
            ],
            "TrafficPattern": {
                "TrafficType": "PHASES",
                "Phases": [
                    {"InitialNumberOfUsers": 1, "SpawnRate": 0, "DurationInSeconds": 2},
                    {"InitialNumberOfUsers": 2, "SpawnRate": 0, "DurationInSeconds": 2},
                ],
            },
        },
        StoppingConditions={
            "ModelLatencyThresholds": [{"Percentile": "P99", "ValueInMilliseconds": 60000}]
        },
    )
    got = wait_done(sm, job)
    assert got["Status"] == "COMPLETED", got.get("FailureReason")
    recs = got["InferenceRecommendations"]
    assert {r["EndpointConfiguration"]["InstanceType"] for r in recs} == {"ml.c5.large"}
    workers = {p["Value"] for r in recs for p in r["ModelConfiguration"]["EnvironmentParameters"]}
    assert workers == {"1", "2"}
    for rec in recs:
        check_costs(rec)
    # The temporary models with those environments are gone with their endpoints.
    assert not sm.list_models(NameContains=job[:40])["Models"]
    assert got["StoppingConditions"]["ModelLatencyThresholds"][0]["Percentile"] == "P99"


def test_bad_requests_are_refused_with_the_field(rec_server: ModelhostServer, model: str) -> None:
    from botocore.exceptions import ClientError

    sm, _ = rec_server.clients()
    with pytest.raises(ClientError) as info:
        sm.create_inference_recommendations_job(
            JobName=unique("rec-bad"),
            JobType="Default",
            RoleArn=ROLE,
            InputConfig={"ModelName": model},
        )
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert "SamplePayloadUrl" in info.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as info:
        sm.describe_inference_recommendations_job(JobName="nope")
    assert info.value.response["Error"]["Code"] == "ResourceNotFound"


def test_a_job_resumes_after_a_restart(
    rec_server: ModelhostServer, model: str, payloads: str
) -> None:
    sm, _ = rec_server.clients()
    job = unique("rec-restart")
    sm.create_inference_recommendations_job(
        JobName=job,
        JobType="Default",
        RoleArn=ROLE,
        InputConfig={
            "ModelName": model,
            "ContainerConfig": {
                "PayloadConfig": {"SamplePayloadUrl": payloads},
                "SupportedInstanceTypes": ["ml.c5.large", "ml.c5.xlarge"],
            },
        },
    )
    deadline = time.monotonic() + 120
    while sm.describe_inference_recommendations_job(JobName=job)["Status"] == "PENDING":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    rec_server.restart()
    sm, _ = rec_server.clients()
    got = wait_done(sm, job)
    assert got["Status"] == "COMPLETED", got.get("FailureReason")
    assert len(got["InferenceRecommendations"]) == 2
    wait_gone(sm, job[:40])


def test_stop_a_job(rec_server: ModelhostServer, model: str, payloads: str) -> None:
    sm, _ = rec_server.clients()
    job = unique("rec-stop")
    sm.create_inference_recommendations_job(
        JobName=job,
        JobType="Default",
        RoleArn=ROLE,
        InputConfig={
            "ModelName": model,
            "ContainerConfig": {"PayloadConfig": {"SamplePayloadUrl": payloads}},
        },
    )
    sm.stop_inference_recommendations_job(JobName=job)
    assert wait_done(sm, job)["Status"] == "STOPPED"
    assert sm.list_inference_recommendations_jobs(StatusEquals="STOPPED", NameContains=job)[
        "InferenceRecommendationsJobs"
    ]


def test_cli_creates_shows_and_deploys(
    rec_server: ModelhostServer, model: str, payloads: str, tmp_path: Path
) -> None:
    job = unique("rec-cli")
    out = tmp_path / "rec"
    args = ["--name", job, "--instance-type", "ml.c5.large", "--out", str(out)]
    done = cli(rec_server, "recommend", "create", model, "--payloads", payloads, *args)
    assert done.returncode == 0, done.stderr
    assert "ml.c5.large" in done.stdout and "$/1M inferences" in done.stdout
    raw = json.loads((out / "recommendations.json").read_text())
    assert raw["InferenceRecommendations"][0]["ParetoOptimal"] is True
    assert "<svg" in (out / "pareto.html").read_text()
    done = cli(rec_server, "recommend", "describe", job)
    assert done.returncode == 0 and "pareto" in done.stdout
    done = cli(rec_server, "advise", "--from-recommendation", f"{job}/1", "--json")
    assert done.returncode == 0, done.stderr
    workload = json.loads(done.stdout)["Workload"]
    assert workload["InstanceType"] == "ml.c5.large" and workload["CapacityRPS"] > 0
    name = unique("rec-cli-ep")
    done = cli(rec_server, "deploy", "--from-recommendation", f"{job}/1", "--name", name)
    assert done.returncode == 0, done.stderr
    sm, _ = rec_server.clients()
    described = sm.describe_endpoint(EndpointName=name)
    assert described["EndpointStatus"] == "InService"
    config = sm.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
    assert config["ProductionVariants"][0]["InstanceType"] == "ml.c5.large"
    # `recommend deploy` is the same code; both refuse what is not there, naming it.
    done = cli(rec_server, "recommend", "deploy", f"{job}/9", "--name", unique("rec-none"))
    assert done.returncode != 0 and f"job {job} has 1 recommendation(s)" in done.stderr
    done = cli(
        rec_server,
        "deploy",
        "model.tar.gz",
        "--from-recommendation",
        f"{job}/1",
        "--name",
        unique("rec-both"),
    )
    assert done.returncode != 0 and "one of them" in done.stderr


def test_a_configuration_over_its_threshold_stops_early(
    rec_server: ModelhostServer, model: str, payloads: str
) -> None:
    sm, _ = rec_server.clients()
    job = unique("rec-slow")
    sm.create_inference_recommendations_job(
        JobName=job,
        JobType="Advanced",
        RoleArn=ROLE,
        InputConfig={
            "ModelName": model,
            "ContainerConfig": {"PayloadConfig": {"SamplePayloadUrl": payloads}},
            "EndpointConfigurations": [{"InstanceType": "ml.c5.large"}],
            "TrafficPattern": {
                "Phases": [{"InitialNumberOfUsers": 1, "SpawnRate": 0, "DurationInSeconds": 60}]
            },
        },
        StoppingConditions={
            "ModelLatencyThresholds": [{"Percentile": "P99", "ValueInMilliseconds": 0}]
        },
    )
    got = wait_done(sm, job)
    assert got["Status"] == "FAILED" and "stopping conditions" in got["FailureReason"]
    (step,) = sm.list_inference_recommendations_job_steps(JobName=job)["Steps"]
    assert step["Status"] == "FAILED"
    assert step["InferenceBenchmark"]["FailureReason"].startswith("stopped early: p99")


def test_the_sagemaker_sdks_right_size_then_deploy(
    rec_server: ModelhostServer,
    churn_model: ChurnModel,
    payloads: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The SDK's flow: Model.right_size(...) runs a Default job, model.deploy() with no
    instance type deploys a real-time recommendation of it (the SDK 2.x takes the last one
    listed, `_filter_recommendations_for_realtime`)."""
    key_id, secret = rec_server.credentials
    for variable, value in {
        "AWS_ACCESS_KEY_ID": key_id,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_SAGEMAKER": rec_server.url,
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": rec_server.url,
        "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }.items():
        monkeypatch.setenv(variable, value)
    # No default boto3 session cached by an earlier test with another server's keys.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the SDK's own deprecation notices
        from sagemaker.model import Model
        from sagemaker.predictor import Predictor
        from sagemaker.serializers import CSVSerializer

        model = Model(
            image_uri=XGBOOST_IMAGE,
            model_data=str(churn_model.artifact),
            role=ROLE,
            name=unique("rs-model"),
            predictor_cls=Predictor,
            sagemaker_session=sdk_session(),
        )
        model.right_size(
            sample_payload_url=payloads,
            supported_content_types=["text/csv"],
            supported_instance_types=["ml.c5.large", "ml.m5.large"],
            job_name=unique("rs-job"),
            framework="XGBOOST",
            log_level="Quiet",
        )
        recs = model.inference_recommendations
        assert recs and {r["EndpointConfiguration"]["InstanceType"] for r in recs} == {
            "ml.c5.large",
            "ml.m5.large",
        }
        endpoint = unique("rs-ep")
        predictor = model.deploy(endpoint_name=endpoint, serializer=CSVSerializer())
        X = churn_model.data.X[:2]
        got = [float(v) for v in predictor.predict(X).decode().split(",")]
    assert got == pytest.approx(list(churn_model.expected(X)), rel=1e-5)
    sm, _ = rec_server.clients()
    config = sm.describe_endpoint_config(
        EndpointConfigName=sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
    )["ProductionVariants"][0]
    picked = recs[-1]["EndpointConfiguration"]
    assert config["InstanceType"] == picked["InstanceType"]
    assert config["InitialInstanceCount"] == picked["InitialInstanceCount"]
