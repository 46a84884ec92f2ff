"""The SageMaker SDK's DefaultModelMonitor.suggest_baseline against modelhost, with S3 on moto."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelhost.testing.churn import make_churn
from modelhost.testing.s3 import local_s3_server, s3_client
from modelhost.testing.server import ModelhostServer
from tests.monitor.support import MONITOR_COLUMNS, table_rows
from tests.support import FAST_ENV, sdk_session, unique

pytestmark = pytest.mark.integration

ROLE = "arn:aws:iam::123456789012:role/modelhost"


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    with local_s3_server() as url:
        yield url


def test_default_model_monitor_suggest_baseline(
    tmp_path: Path, s3_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))

    env = {
        **FAST_ENV,
        "MODELHOST_S3_ENDPOINT_URL": s3_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    bucket = unique("sdk-monitor")
    s3 = s3_client(s3_url)
    s3.create_bucket(Bucket=bucket)
    text = ",".join(MONITOR_COLUMNS) + "\n" + "\n".join(table_rows(make_churn(500, seed=2)))
    s3.put_object(Bucket=bucket, Key="data/train.csv", Body=text.encode())
    with ModelhostServer(tmp_path / "home", env=env) as srv, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the SDK's own deprecation notices
        import boto3
        from sagemaker.model_monitor import DefaultModelMonitor
        from sagemaker.model_monitor.dataset_format import DatasetFormat

        sm, rt = srv.clients()
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_url)
        boto_session = boto3.Session(
            region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        session = sdk_session(
            boto_session=boto_session,
            sagemaker_client=sm,
            sagemaker_runtime_client=rt,
            default_bucket=bucket,
        )
        monitor = DefaultModelMonitor(
            role=ROLE,
            instance_count=1,
            instance_type="ml.m5.xlarge",
            sagemaker_session=session,
        )
        monitor.suggest_baseline(
            baseline_dataset=f"s3://{bucket}/data/train.csv",
            dataset_format=DatasetFormat.csv(header=True),
            output_s3_uri=f"s3://{bucket}/baseline",
            wait=True,
            logs=False,
        )
        stats = monitor.baseline_statistics().body_dict
        constraints = monitor.suggested_constraints().body_dict
    assert stats["dataset"]["item_count"] == 500
    assert [f["name"] for f in stats["features"]] == list(MONITOR_COLUMNS)
    by_name = {f["name"]: f for f in constraints["features"]}
    assert by_name["State"]["inferred_type"] == "String"
    assert by_name["Day Mins"]["inferred_type"] == "Fractional"
