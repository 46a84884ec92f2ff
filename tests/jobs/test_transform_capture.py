"""A transform job's DataCaptureConfig, without processes: the manifests SageMaker's batch
capture layout holds, inference ids in the outputs, what is refused, and the capture read
back as capture records (monitor/batch_capture.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelhost.errors import ValidationException
from modelhost.jobs import batch_capture
from modelhost.jobs.objects import InputObject
from modelhost.jobs.requests import check_request
from modelhost.monitor import batch_capture as reader
from modelhost.settings import Settings
from modelhost.store.outputs import Locations


def _request(**capture: object) -> dict[str, object]:
    return {
        "TransformJobName": "t",
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "/d"}},
            "SplitType": "None",
        },
        "TransformOutput": {"S3OutputPath": "/o"},
        "DataCaptureConfig": {"DestinationS3Uri": "/capture", **capture},
    }


def test_capture_is_accepted_and_checked(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    request = _request()
    check_request(request)
    batch_capture.check(request, settings)
    with pytest.raises(ValidationException, match="GenerateInferenceId needs SplitType Line"):
        batch_capture.check(_request(GenerateInferenceId=True), settings)
    inside_home = _request()
    inside_home["DataCaptureConfig"] = {"DestinationS3Uri": str(tmp_path / "home" / "x")}
    with pytest.raises(ValidationException, match="destinationS3Uri"):
        batch_capture.check(inside_home, settings)


def test_manifests_and_inference_ids_read_back_as_capture_records(tmp_path: Path) -> None:
    data, out, dest = tmp_path / "in", tmp_path / "out", tmp_path / "capture"
    (data / "a").mkdir(parents=True)
    out.mkdir()
    (data / "a" / "part.csv").write_text("1,x\n2,y\n")
    (out / "a").mkdir()
    (out / "a" / "part.csv.out").write_text("0.1\n0.9\n")
    inputs = [InputObject(str(data / "a" / "part.csv"), "a/part.csv", 8)]
    outputs = {"a/part.csv": str(out / "a" / "part.csv.out")}
    start_s = 1_765_000_000.25  # 2025-12-06T05:46:40.250Z
    config = {"DestinationS3Uri": str(dest), "GenerateInferenceId": True}
    batch_capture.write(Locations(None), config, inputs, outputs, start_s)

    [manifest] = sorted((dest / "input").rglob("*.json"))
    assert manifest.relative_to(dest / "input").as_posix().startswith("2025/12/06/05/46-40-250-")
    assert json.loads(manifest.read_text()) == [{"prefix": f"{data}/"}, "a/part.csv"]
    output_manifest = dest / "output" / manifest.relative_to(dest / "input")
    assert json.loads(output_manifest.read_text()) == [{"prefix": f"{out}/"}, "a/part.csv.out"]
    lines = (out / "a" / "part.csv.out").read_text().splitlines()
    assert all(len(line.split(",")) == 3 for line in lines)  # prediction, id, time

    def read(url: str) -> str | None:
        path = Path(url)
        return path.read_text() if path.exists() else None

    assert reader.manifest_time(str(manifest)) == pytest.approx(start_s)
    records = [
        json.loads(r)
        for r in reader.capture_lines([str(manifest)], read, {"csv": {"header": False}})
    ]
    assert [r["captureData"]["endpointInput"]["data"] for r in records] == ["1,x", "2,y"]
    assert [r["captureData"]["endpointOutput"]["data"] for r in records] == ["0.1", "0.9"]
    ids = [line.split(",")[1] for line in lines]
    assert [r["eventMetadata"]["inferenceId"] for r in records] == ids
    assert records[0]["eventMetadata"]["inferenceTime"] == "2025-12-06T05:46:40Z"


def test_json_outputs_get_id_keys_and_lose_them_when_read() -> None:
    body = batch_capture.with_inference_ids(b'{"score": 0.5}\n', 0.0)
    doc = json.loads(body)
    assert doc["score"] == 0.5 and doc["SageMakerInferenceTime"] == "1970-01-01T00:00:00Z"
    [record] = reader.records(['{"a": 1}'], [body.decode().strip()], {"json": {"lines": True}}, 0)
    captured = json.loads(record)
    assert json.loads(captured["captureData"]["endpointOutput"]["data"]) == {"score": 0.5}
    assert captured["eventMetadata"]["inferenceId"] == doc["SageMakerInferenceId"]


def test_batch_transform_input_becomes_the_runs_dataset() -> None:
    from modelhost.jobs import monitoring_request as requests

    batch = {
        "DataCapturedDestinationS3Uri": "s3://bucket/capture",
        "DatasetFormat": {"Csv": {"Header": True}},
        "LocalPath": "/opt/ml/processing/input",
    }
    job = {
        "DataQualityAppSpecification": {"ImageUri": "x/sagemaker-model-monitor-analyzer"},
        "DataQualityBaselineConfig": {
            "ConstraintsResource": {"S3Uri": "/b/constraints.json"},
            "StatisticsResource": {"S3Uri": "/b/statistics.json"},
        },
        "DataQualityJobInput": {"BatchTransformInput": batch},
        "DataQualityJobOutputConfig": {
            "MonitoringOutputs": [{"S3Output": {"S3Uri": "/out", "LocalPath": "/opt/out"}}]
        },
    }
    d = requests.from_data_quality(job)
    assert (d.endpoint, d.batch_capture_uri) == ("", "s3://bucket/capture")
    request = requests.processing_request(d, "sched", "s3://bucket/capture/input/", 0.0, (0, 1))
    env = request["Environment"]
    assert json.loads(env["dataset_format"]) == {"csv": {"header": True}}
    assert "sagemaker_endpoint_name" not in env
    for member, value in (("StartTimeOffset", "-PT1H"), ("DatasetFormat", {"Parquet": {}})):
        job["DataQualityJobInput"] = {"BatchTransformInput": {**batch, member: value}}
        with pytest.raises(ValidationException, match=member):
            requests.from_data_quality(job)
