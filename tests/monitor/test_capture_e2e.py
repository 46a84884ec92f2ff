"""Data capture through a real gateway and boto3: SageMaker's format and layout, the
summary in DescribeEndpoint, UpdateEndpoint to a new capture, S3, and overload."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from modelhost.testing.churn import csv_rows
from modelhost.testing.s3 import local_s3_server, s3_client
from modelhost.testing.server import ModelhostServer
from tests.monitor.support import (
    capture_config,
    capture_s3_env,
    create_capturing_config,
    deploy_capturing,
    wait_in_service,
    wait_records,
)
from tests.support import FAST_ENV, ChurnModel, unique

pytestmark = pytest.mark.integration

LAYOUT = re.compile(r"^AllTraffic/\d{4}/\d{2}/\d{2}/\d{2}/\d{2}-\d{2}-\d{3}-[0-9a-f-]{36}\.jsonl$")


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    with local_s3_server() as url:
        yield url


@pytest.fixture(scope="module")
def capture_server(
    tmp_path_factory: pytest.TempPathFactory, s3_url: str
) -> Iterator[ModelhostServer]:
    env = capture_s3_env(s3_url)
    with ModelhostServer(tmp_path_factory.mktemp("capture-home"), env=env) as srv:
        yield srv


def test_capture_files_have_sagemakers_format_and_layout(
    capture_server: ModelhostServer, churn_model: ChurnModel, tmp_path: Path
) -> None:
    sm, rt = capture_server.clients()
    name = unique("cap")
    dest = tmp_path / "capture"
    deploy_capturing(sm, name, str(churn_model.artifact), str(dest))
    rows = csv_rows(churn_model.data.X[:3])
    answers = []
    for i, row in enumerate(rows):
        extra = {"InferenceId": f"id-{i}"} if i == 0 else {}
        resp = rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=row, **extra)
        answers.append(resp["Body"].read().decode())
    found = wait_records(dest, 3)
    assert len(found) == 3
    by_input = {rec["captureData"]["endpointInput"]["data"]: rec for _, rec in found}
    assert set(by_input) == set(rows)
    for path, rec in found:
        assert LAYOUT.match(str(path.relative_to(dest / name))), path
        assert rec["eventVersion"] == "0"
        assert re.match(
            r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$", rec["eventMetadata"]["inferenceTime"]
        )
        assert rec["captureData"]["endpointInput"]["observedContentType"] == "text/csv"
        assert rec["captureData"]["endpointInput"]["mode"] == "INPUT"
        assert rec["captureData"]["endpointInput"]["encoding"] == "CSV"
        assert rec["captureData"]["endpointOutput"]["mode"] == "OUTPUT"
    outputs = sorted(rec["captureData"]["endpointOutput"]["data"] for _, rec in found)
    assert outputs == sorted(answers)
    assert by_input[rows[0]]["eventMetadata"]["inferenceId"] == "id-0"
    assert "inferenceId" not in by_input[rows[1]]["eventMetadata"]

    desc = sm.describe_endpoint(EndpointName=name)["DataCaptureConfig"]
    assert desc == {
        "EnableCapture": True,
        "CaptureStatus": "Started",
        "CurrentSamplingPercentage": 100,
        "DestinationS3Uri": str(dest),
        "KmsKeyId": "",
    }
    config = sm.describe_endpoint_config(EndpointConfigName=name)["DataCaptureConfig"]
    assert config["InitialSamplingPercentage"] == 100

    # UpdateEndpoint to a config with another sampling percentage and destination.
    moved = tmp_path / "moved"
    create_capturing_config(sm, f"{name}-v2", name, str(moved), percent=50)
    sm.update_endpoint(EndpointName=name, EndpointConfigName=f"{name}-v2")
    wait_in_service(sm, name)
    assert (
        sm.describe_endpoint(EndpointName=name)["DataCaptureConfig"]["CurrentSamplingPercentage"]
        == 50
    )
    for _ in range(40):
        rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=rows[0])
    assert wait_records(moved, 1)
    sm.delete_endpoint(EndpointName=name)


def test_capture_to_s3(
    capture_server: ModelhostServer, churn_model: ChurnModel, s3_url: str
) -> None:
    sm, rt = capture_server.clients()
    s3 = s3_client(s3_url)
    bucket = unique("capture")
    s3.create_bucket(Bucket=bucket)
    name = unique("cap-s3")
    deploy_capturing(sm, name, str(churn_model.artifact), f"s3://{bucket}/dc")
    row = csv_rows(churn_model.data.X[:1])[0]
    rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=row)
    deadline = time.monotonic() + 60
    keys: list[str] = []
    while not keys and time.monotonic() < deadline:
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
        time.sleep(0.2)
    assert len(keys) == 1 and keys[0].startswith(f"dc/{name}/AllTraffic/")
    body = s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read()
    assert json.loads(body)["captureData"]["endpointInput"]["data"] == row
    sm.delete_endpoint(EndpointName=name)


def test_bad_capture_configs_are_refused(capture_server: ModelhostServer) -> None:
    sm, _ = capture_server.clients()
    variant = {
        "VariantName": "AllTraffic",
        "ModelName": "any",
        "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large",
    }
    bad = [
        {**capture_config("/tmp/x"), "InitialSamplingPercentage": 101},
        {**capture_config("/tmp/x"), "CaptureOptions": [{"CaptureMode": "Both"}]},
        capture_config(str(capture_server.home / "inside")),
    ]
    for spec in bad:
        with pytest.raises(ClientError) as info:
            sm.create_endpoint_config(
                EndpointConfigName=unique("bad"),
                ProductionVariants=[variant],
                DataCaptureConfig=spec,
            )
        assert info.value.response["Error"]["Code"] == "ValidationException"


def test_overload_drops_records_and_never_fails_requests(
    tmp_path: Path, churn_model: ChurnModel
) -> None:
    # Two buffered records and no flush while the test runs: the rest must be dropped.
    env = {
        **FAST_ENV,
        "MODELHOST_CAPTURE_BUFFER_RECORDS": "2",
        "MODELHOST_CAPTURE_FLUSH_INTERVAL_S": "3600",
    }
    with ModelhostServer(tmp_path / "home", env=env) as srv:
        sm, rt = srv.clients()
        name = unique("cap-full")
        deploy_capturing(sm, name, str(churn_model.artifact), str(tmp_path / "capture"))
        row = csv_rows(churn_model.data.X[:1])[0]
        for _ in range(20):
            resp = rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=row)
            assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
        with urllib.request.urlopen(srv.signed("GET", "/metrics"), timeout=10) as resp:
            text = resp.read().decode()
        dropped = re.search(
            rf'DataCaptureRecordsDropped_total{{EndpointName="{name}",VariantName="AllTraffic"}} '
            r"([0-9.]+)",
            text,
        )
        assert dropped is not None and float(dropped.group(1)) == 18.0
