"""Asynchronous endpoints end to end: real servers, real boto3, moto for S3/SNS/SQS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError

from modelhost.testing.churn import csv_rows
from modelhost.testing.s3 import TEST_REGION, local_s3_server
from modelhost.testing.server import ModelhostServer
from tests.gateway.support import csv_floats
from tests.jobs.async_support import (
    ASYNC_ENV,
    async_config,
    deploy_async,
    local_path,
    metric_value,
    slow_artifact,
    webhook_receiver,
)
from tests.jobs.support import wait_for
from tests.support import FAST_ENV, ChurnModel, cli, deploy, unique

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with local_s3_server() as url:
        yield url


@pytest.fixture(scope="module")
def async_server(
    tmp_path_factory: pytest.TempPathFactory, moto_url: str
) -> Iterator[ModelhostServer]:
    env = {
        **FAST_ENV,
        **ASYNC_ENV,
        "MODELHOST_S3_ENDPOINT_URL": moto_url,
        "MODELHOST_SNS_ENDPOINT_URL": moto_url,
    }
    with ModelhostServer(tmp_path_factory.mktemp("async-home"), env=env) as srv:
        yield srv


def _aws(service: str, url: str) -> Any:
    import boto3

    return boto3.session.Session().client(
        service,
        endpoint_url=url,
        region_name=TEST_REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_async_round_trip_refusals_and_model_errors(
    async_server: ModelhostServer, churn_model: ChurnModel, tmp_path: Path
) -> None:
    sm, rt = async_server.clients(retries={"max_attempts": 1, "mode": "standard"})
    name = unique("async")
    config = async_config(f"file://{tmp_path / 'out'}", str(tmp_path / "fail"), per_instance=2)
    deploy_async(sm, name, churn_model.artifact, config)
    assert sm.describe_endpoint_config(EndpointConfigName=name)["AsyncInferenceConfig"] == config
    assert sm.describe_endpoint(EndpointName=name)["AsyncInferenceConfig"] == config

    X = churn_model.data.X[:5]
    source = tmp_path / "in.csv"
    source.write_text("\n".join(csv_rows(X)))
    answer = rt.invoke_endpoint_async(
        EndpointName=name, InputLocation=str(source), ContentType="text/csv", InferenceId="req-1"
    )
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert answer["InferenceId"] == "req-1"
    assert answer["OutputLocation"].startswith(f"file://{tmp_path / 'out'}/")
    assert answer["FailureLocation"].startswith(f"{tmp_path / 'fail'}/")
    # The same InferenceId is one request: same locations, run once.
    again = rt.invoke_endpoint_async(
        EndpointName=name, InputLocation=str(source), ContentType="text/csv", InferenceId="req-1"
    )
    assert again["OutputLocation"] == answer["OutputLocation"]
    output = local_path(answer["OutputLocation"])
    wait_for(output.exists)
    np.testing.assert_allclose(csv_floats(output.read_bytes()), churn_model.expected(X), 1e-5)

    # An inline body (no InputLocation) works too.
    inline = rt.invoke_endpoint_async(
        EndpointName=name, Body="\n".join(csv_rows(X[:1])).encode(), ContentType="text/csv"
    )
    wait_for(local_path(inline["OutputLocation"]).exists)

    # The model's own error lands in the failure location; no output is written.
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2\n")
    failed = rt.invoke_endpoint_async(
        EndpointName=name, InputLocation=str(bad), ContentType="text/csv"
    )
    failure = local_path(failed["FailureLocation"])
    wait_for(failure.exists)
    assert "feature" in failure.read_text().lower(), failure.read_text()
    assert not local_path(failed["OutputLocation"]).exists()

    # Metrics, as SageMaker names them, through the CloudWatch API.
    cw = async_server.client("cloudwatch")
    endpoint_only = [{"Name": "EndpointName", "Value": name}]
    variant = [*endpoint_only, {"Name": "VariantName", "Value": "AllTraffic"}]
    wait_for(lambda: metric_value(cw, "InvocationsProcessed", variant) == 2)
    wait_for(lambda: metric_value(cw, "InvocationFailures", variant) == 1)
    wait_for(lambda: metric_value(cw, "ApproximateBacklogSize", endpoint_only, "SampleCount") > 0)
    assert metric_value(cw, "HasBacklogWithoutCapacity", endpoint_only, "Maximum") == 0

    # An async endpoint takes only async invocations, and vice versa.
    with pytest.raises(ClientError) as info:
        rt.invoke_endpoint(EndpointName=name, Body=b"1,2", ContentType="text/csv")
    assert info.value.response["Error"]["Code"] == "ValidationError"
    assert "InvokeEndpointAsync" in info.value.response["Error"]["Message"]
    realtime = unique("rt")
    deploy(sm, realtime, str(churn_model.artifact))
    with pytest.raises(ClientError) as info:
        rt.invoke_endpoint_async(EndpointName=realtime, InputLocation=str(source))
    assert info.value.response["Error"]["Code"] == "ValidationError"
    assert "not an asynchronous endpoint" in info.value.response["Error"]["Message"]
    # Header bounds from the runtime model (botocore checks only the minimum itself).
    with pytest.raises(ClientError) as info:
        rt.invoke_endpoint_async(
            EndpointName=name, InputLocation=str(source), RequestTTLSeconds=30000
        )
    assert "requestTTLSeconds" in info.value.response["Error"]["Message"]
    # The CLI tells the two kinds apart.
    out = cli(async_server, "endpoints")
    kinds = {line.split()[0]: line.split()[-1] for line in out.stdout.splitlines()[1:]}
    assert kinds[name] == "async" and kinds[realtime] == "real-time"
    sm.delete_endpoint(EndpointName=realtime)


def test_sns_and_webhook_notifications(
    async_server: ModelhostServer, churn_model: ChurnModel, moto_url: str
) -> None:
    sm, rt = async_server.clients()
    sns, sqs, s3 = _aws("sns", moto_url), _aws("sqs", moto_url), _aws("s3", moto_url)
    bucket = unique("async-notes")
    s3.create_bucket(Bucket=bucket)
    topic = sns.create_topic(Name=unique("done"))["TopicArn"]
    queue_url = sqs.create_queue(QueueName=unique("done-q"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    X = churn_model.data.X[:2]
    s3.put_object(Bucket=bucket, Key="in/good.csv", Body="\n".join(csv_rows(X)))
    s3.put_object(Bucket=bucket, Key="in/bad.csv", Body="1,2\n")
    with webhook_receiver() as hook:
        name = unique("async-notify")
        config = async_config(
            f"s3://{bucket}/out",
            f"s3://{bucket}/fail",
            success_topic=topic,
            error_topic=hook.url,
            include=["SUCCESS_NOTIFICATION_TOPIC"],
        )
        deploy_async(sm, name, churn_model.artifact, config)
        good = rt.invoke_endpoint_async(
            EndpointName=name, InputLocation=f"s3://{bucket}/in/good.csv", ContentType="text/csv"
        )
        bad = rt.invoke_endpoint_async(
            EndpointName=name, InputLocation=f"s3://{bucket}/in/bad.csv", ContentType="text/csv"
        )
        wait_for(lambda: len(hook.received) >= 1)
        error = hook.received[0]
        assert error["invocationStatus"] == "Failed"
        assert error["inferenceId"] == bad["InferenceId"]
        assert error["responseParameters"]["failureLocation"] == bad["FailureLocation"]
        assert error["requestParameters"]["inputLocation"] == f"s3://{bucket}/in/bad.csv"
        assert error["eventSource"] == "aws:sagemaker" and error["failureReason"]

    messages: list[dict[str, Any]] = []

    def received() -> bool:
        got = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages", [])
        messages.extend(json.loads(json.loads(m["Body"])["Message"]) for m in got)
        return bool(messages)

    wait_for(received)
    success = messages[0]
    assert success["invocationStatus"] == "Completed"
    assert success["inferenceId"] == good["InferenceId"]
    assert success["responseParameters"]["outputLocation"] == good["OutputLocation"]
    assert success["requestParameters"]["endpointName"] == name
    assert "responseBody" in success
    key = good["OutputLocation"].split(f"s3://{bucket}/", 1)[1]
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    np.testing.assert_allclose(csv_floats(body), churn_model.expected(X), 1e-5)


def test_ttl_expiry_and_invocation_timeout(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    env = {**FAST_ENV, **ASYNC_ENV, "MODELHOST_ASYNC_REQUEST_TTL_S": "2"}
    artifact = slow_artifact(tmp_path_factory.mktemp("slow"))
    with ModelhostServer(tmp_path / "home", env=env) as srv:
        sm, rt = srv.clients()
        name = unique("async-ttl")
        out = tmp_path / "out"
        deploy_async(sm, name, artifact, async_config(str(out), per_instance=1))
        source = tmp_path / "in.json"
        source.write_text("[1]")
        # Runs at once (its own TTL is long), and outlives its InvocationTimeoutSeconds
        # (the model takes 5 s).
        first = rt.invoke_endpoint_async(
            EndpointName=name,
            InputLocation=str(source),
            ContentType="application/json",
            InvocationTimeoutSeconds=3,
            RequestTTLSeconds=600,
        )
        # Wait behind it (one at a time) for longer than the server's default TTL (2 s).
        waiting = [
            rt.invoke_endpoint_async(
                EndpointName=name, InputLocation=str(source), ContentType="application/json"
            )
            for _ in range(2)
        ]
        timed_out = local_path(first["FailureLocation"])
        wait_for(timed_out.exists)
        assert "InvocationTimeoutSeconds" in timed_out.read_text()
        for answer in waiting:
            expired = local_path(answer["FailureLocation"])
            wait_for(expired.exists)
            assert "expired" in expired.read_text() and "RequestTTLSeconds" in expired.read_text()
            assert not local_path(answer["OutputLocation"]).exists()
