"""A transform job's instance logs in `/aws/sagemaker/TransformJobs`, read with boto3 and
tailed by the SageMaker Python SDK 2.x's `transformer.transform(..., wait=True, logs=True)`,
which runs unchanged but for the endpoint URLs in the environment."""

from __future__ import annotations

import tarfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from modelhost.telemetry.logs import TRANSFORM_GROUP
from modelhost.testing.s3 import local_s3_server, s3_client
from modelhost.testing.server import ModelhostServer
from tests.jobs.support import transform
from tests.support import FAST_ENV, unique

pytestmark = pytest.mark.integration

BATCH_SCRIPT = """
def model_fn(model_dir):
    print("batch model ready")
    return None


def input_fn(body, content_type):
    text = body.decode() if isinstance(body, (bytes, bytearray)) else body
    return [line for line in text.splitlines() if line]


def predict_fn(rows, model):
    print(f"scored {len(rows)} rows")
    return [str(len(row)) for row in rows]


def output_fn(prediction, accept):
    return "\\n".join(prediction) + "\\n", "text/csv"
"""


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    with local_s3_server() as url:
        yield url


@pytest.fixture(scope="module")
def batch_server(
    s3_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModelhostServer]:
    env = {
        **FAST_ENV,
        "MODELHOST_LOGS_POLL_INTERVAL_S": "0.2",
        "MODELHOST_S3_ENDPOINT_URL": s3_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    with ModelhostServer(tmp_path_factory.mktemp("batch-logs-home"), env=env) as srv:
        yield srv


@pytest.fixture(scope="module")
def batch_model(batch_server: ModelhostServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("batch-script")
    (root / "inference.py").write_text(BATCH_SCRIPT)
    artifact = root / "model.tar.gz"
    with tarfile.open(artifact, "w:gz") as tar:
        tar.add(root / "inference.py", arcname="code/inference.py")
    sm, _ = batch_server.clients()
    name = unique("batch-logs")
    sm.create_model(
        ModelName=name,
        PrimaryContainer={"ModelDataUrl": str(artifact)},
        ExecutionRoleArn="arn:aws:iam::123456789012:role/modelhost",
    )
    return name


@pytest.fixture(scope="module")
def bucket(s3_url: str) -> str:
    s3 = s3_client(s3_url)
    name = unique("logs")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="in/a.csv", Body="1,2,3\n4,5\n6\n")
    return name


def _logs(server: ModelhostServer) -> Any:
    key_id, secret = server.credentials
    return boto3.client(
        "logs",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def test_transform_job_stream(batch_server: ModelhostServer, batch_model: str, bucket: str) -> None:
    sm, _ = batch_server.clients()
    d = transform(sm, batch_model, f"s3://{bucket}/in/", f"s3://{bucket}/out-boto3")
    assert d["TransformJobStatus"] == "Completed", d.get("FailureReason")
    job = d["TransformJobName"]
    logs = _logs(batch_server)
    streams = logs.describe_log_streams(
        logGroupName=TRANSFORM_GROUP, logStreamNamePrefix=f"{job}/", orderBy="LogStreamName"
    )["logStreams"]
    assert len(streams) == 1 and streams[0]["logStreamName"].startswith(f"{job}/i-")
    events = logs.get_log_events(
        logGroupName=TRANSFORM_GROUP,
        logStreamName=streams[0]["logStreamName"],
        startFromHead=True,
    )["events"]
    messages = [e["message"] for e in events]
    assert "batch model ready" in messages and "scored 3 rows" in messages


def test_sagemaker_sdk_transformer_tails_the_job_logs(
    batch_server: ModelhostServer,
    batch_model: str,
    bucket: str,
    s3_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """The seeds' cell: `transformer.transform(data=..., split_type='Line')` with the SDK's
    defaults (wait=True, logs=True), pointed at modelhost by `modelhost credentials`'
    variables only."""
    key_id, secret = batch_server.credentials
    for name, value in {
        "AWS_ACCESS_KEY_ID": key_id,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_SAGEMAKER": batch_server.url,
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": batch_server.url,
        "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS": batch_server.url,
        "AWS_ENDPOINT_URL_CLOUDWATCH": batch_server.url,
        "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
    }.items():
        monkeypatch.setenv(name, value)
    # No ~/.aws files of whoever runs the tests.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    # A notebook starts with no default boto3 session; in this worker an earlier test's
    # boto3.client() may have cached another server's keys in one, which the SDK would reuse.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import sagemaker
        from sagemaker.transformer import Transformer

        transformer = Transformer(
            model_name=batch_model,
            instance_count=1,
            instance_type="ml.m5.large",
            output_path=f"s3://{bucket}/out-sdk",
            sagemaker_session=sagemaker.Session(),
        )
        transformer.transform(
            data=f"s3://{bucket}/in/",
            content_type="text/csv",
            split_type="Line",
            wait=True,
            logs=True,
        )
    printed = capsys.readouterr().out
    assert "batch model ready" in printed
    assert "scored 3 rows" in printed
    out = s3_client(s3_url).get_object(Bucket=bucket, Key="out-sdk/a.csv.out")
    assert out["Body"].read().split() == [b"5", b"3", b"1"]
