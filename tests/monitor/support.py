"""Helpers shared by the monitor tests: endpoints with data capture, reading capture files."""

from __future__ import annotations

import json
import tarfile
import time
from pathlib import Path
from typing import Any

from modelhost.testing import monitor
from tests.support import FAST_ENV, XGBOOST_IMAGE, unique


def capture_s3_env(s3_url: str) -> dict[str, str]:
    """A server that captures fast (0.2 s flushes) to the local S3 server at `s3_url`."""
    return {
        **FAST_ENV,
        "MODELHOST_CAPTURE_FLUSH_INTERVAL_S": "0.2",
        "MODELHOST_S3_ENDPOINT_URL": s3_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def capture_config(destination: str, percent: int = 100) -> dict[str, Any]:
    return {
        "EnableCapture": True,
        "InitialSamplingPercentage": percent,
        "DestinationS3Uri": destination,
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"]},
    }


def create_capturing_config(
    sm: Any, name: str, model: str, destination: str, percent: int = 100, output: bool = True
) -> None:
    """A one-instance endpoint config of `model` capturing its input (and output)."""
    config = capture_config(destination, percent)
    if not output:
        config["CaptureOptions"] = [{"CaptureMode": "Input"}]
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": model,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
        DataCaptureConfig=config,
    )


def deploy_capturing(
    sm: Any, name: str, artifact: str, destination: str, image: str = XGBOOST_IMAGE
) -> None:
    """Model, config with DataCaptureConfig (100 %, input and output), endpoint; waits."""
    sm.create_model(
        ModelName=name,
        PrimaryContainer={"Image": image, "ModelDataUrl": artifact},
        ExecutionRoleArn="arn:aws:iam::123456789012:role/modelhost",
    )
    create_capturing_config(sm, name, name, destination)
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    wait_in_service(sm, name)


def wait_in_service(sm: Any, name: str) -> None:
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 240}
    )


def capture_records(root: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every record in the capture files under `root`, with its file."""
    out = []
    for path in sorted(root.rglob("*.jsonl")):
        for line in path.read_text().splitlines():
            out.append((path, json.loads(line)))
    return out


def wait_records(root: Path, count: int, timeout_s: float = 60.0) -> list[tuple[Path, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        found = capture_records(root)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


MONITOR_COLUMNS = (
    "State",
    "Area Code",
    "Int'l Plan",
    "VMail Plan",
    "Account Length",
    "VMail Message",
    "Day Mins",
    "Day Calls",
    "Eve Mins",
    "Eve Calls",
    "Night Mins",
    "Night Calls",
    "Intl Mins",
    "Intl Calls",
    "CustServ Calls",
)
"""The raw churn features an endpoint of raw rows receives (what the monitor watches)."""


def table_rows(
    data: Any, shift: dict[str, float] | None = None, new_state_every: int = 0
) -> list[str]:
    """CSV rows of MONITOR_COLUMNS; `shift` adds to numeric columns, `new_state_every`
    replaces every n-th State with "ZZ" (a value the baseline never saw)."""
    columns = {name: data.raw[name].tolist() for name in MONITOR_COLUMNS}
    rows = []
    for i in range(len(data)):
        values = []
        for name in MONITOR_COLUMNS:
            value = columns[name][i]
            if shift and name in shift:
                value = round(float(value) + shift[name], 2)
            if name == "State" and new_state_every and i % new_state_every == 0:
                value = "ZZ"
            values.append(str(value))
        rows.append(",".join(values))
    return rows


def capture_line(row: str, when: str = "2026-12-06T12:00:00Z") -> str:
    return json.dumps(
        {
            "captureData": {
                "endpointInput": {
                    "observedContentType": "text/csv",
                    "mode": "INPUT",
                    "data": row,
                    "encoding": "CSV",
                }
            },
            "eventMetadata": {"eventId": "e", "inferenceTime": when},
            "eventVersion": "0",
        }
    )


RAW_ROWS_SCRIPT = """
import csv
import io

import numpy as np

STATES = {states!r}
AREA_CODES = ("408", "415", "510")


# The endpoint takes raw churn rows (State, Area Code, plans, then the numeric columns)
# and encodes them as the model's 69 features, so the monitor sees categorical columns.
def input_fn(body, content_type):
    text = body.decode() if isinstance(body, bytes) else body
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    X = np.zeros((len(rows), 69), dtype=np.float32)
    for i, (state, area, intl, vmail, *numbers) in enumerate(rows):
        X[i, :11] = [float(v) for v in numbers]
        if state in STATES:
            X[i, 11 + STATES.index(state)] = 1
        if area in AREA_CODES:
            X[i, 62 + AREA_CODES.index(area)] = 1
        X[i, 65 + (intl == "yes")] = 1
        X[i, 67 + (vmail == "yes")] = 1
    return X


def predict_fn(data, model):
    return model.inplace_predict(data)
"""


def raw_rows_artifact(churn_artifact: Path, root: Path) -> Path:
    """The churn model with code/inference.py that accepts raw rows (MONITOR_COLUMNS)."""
    from modelhost.testing.churn import STATES

    model = root / "raw-model"
    with tarfile.open(churn_artifact) as tar:
        tar.extractall(model, filter="data")
    (model / "code").mkdir()
    (model / "code" / "inference.py").write_text(RAW_ROWS_SCRIPT.format(states=list(STATES)))
    out = root / "raw-model.tar.gz"
    with tarfile.open(out, "w:gz") as tar:
        for path in sorted(model.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(model)), recursive=False)
    return out


def deploy_raw(sm: Any, model: str, capture_dir: Path) -> str:
    """An endpoint of `model` capturing its inputs (100 %) under `capture_dir`; waits."""
    name = unique("mon")
    create_capturing_config(sm, name, model, str(capture_dir), output=False)
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    wait_in_service(sm, name)
    return name


def create_raw_model(sm: Any, churn_artifact: Path, root: Path) -> str:
    """A model of `raw_rows_artifact` (the churn model taking raw MONITOR_COLUMNS rows)."""
    name = unique("raw")
    sm.create_model(
        ModelName=name,
        PrimaryContainer={
            "Image": XGBOOST_IMAGE,
            "ModelDataUrl": str(raw_rows_artifact(churn_artifact, root)),
        },
        ExecutionRoleArn=monitor.ROLE,
    )
    return name


def send(rt: Any, endpoint: str, rows: list[str], per_request: int = 20) -> None:
    for i in range(0, len(rows), per_request):
        rt.invoke_endpoint(
            EndpointName=endpoint, ContentType="text/csv", Body="\n".join(rows[i : i + per_request])
        )


def wait_captured(capture_dir: Path, endpoint: str, requests: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        files = list((capture_dir / endpoint).rglob("*.jsonl"))
        if sum(len(f.read_text().splitlines()) for f in files) >= requests:
            return
        time.sleep(0.2)
    raise AssertionError("captures did not arrive")


def job_definition(endpoint: str, baseline: dict[str, str], out: Path) -> dict[str, Any]:
    """The kit's data-quality job definition for a baseline given as its two files."""
    return monitor.job_definition(endpoint, str(Path(baseline["constraints"]).parent), str(out))


def table_baseline(sm: Any, work: Path) -> dict[str, str]:
    """suggest_baseline's processing job over churn rows of MONITOR_COLUMNS (CSV with a
    header); the statistics.json and constraints.json it wrote."""
    from modelhost.testing.churn import make_churn

    data = work / "baseline-data"
    data.mkdir()
    rows = table_rows(make_churn(3000, seed=1))
    (data / "train.csv").write_text(",".join(MONITOR_COLUMNS) + "\n" + "\n".join(rows) + "\n")
    out = work / "baseline-out"
    desc = monitor.suggest_baseline(sm, unique("baseline"), str(data), str(out))
    assert desc["ProcessingJobStatus"] == "Completed", desc.get("FailureReason")
    return {
        "statistics": str(out / "statistics.json"),
        "constraints": str(out / "constraints.json"),
    }
