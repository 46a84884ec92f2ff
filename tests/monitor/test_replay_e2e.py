"""Replay before deploy through a real server: capture from model A's endpoint, replay to a
model B trained with another seed and to A itself; a bad capture record is reported."""

from __future__ import annotations

import json
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from modelhost.cli import main
from modelhost.gateway.openapi import native_openapi
from modelhost.monitor.replay import parse_captures
from modelhost.monitor.replay_run import replay
from modelhost.testing.churn import csv_rows, make_churn, train_xgboost, write_xgboost_artifact
from modelhost.testing.s3 import local_s3_server, s3_client
from modelhost.testing.server import ModelhostServer
from tests.monitor.support import capture_s3_env, deploy_capturing, wait_records
from tests.support import XGBOOST_IMAGE, ChurnModel, unique

pytestmark = pytest.mark.integration

ROLE = "arn:aws:iam::123456789012:role/modelhost"
ROWS = 20


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    with local_s3_server() as url:
        yield url


@pytest.fixture(scope="module")
def replay_server(
    tmp_path_factory: pytest.TempPathFactory, s3_url: str
) -> Iterator[ModelhostServer]:
    env = capture_s3_env(s3_url)
    with ModelhostServer(tmp_path_factory.mktemp("replay-home"), env=env) as srv:
        yield srv


@pytest.fixture(scope="module")
def captured(
    replay_server: ModelhostServer,
    churn_model: ChurnModel,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[str, Path]:
    """Model A's endpoint with capture, ROWS invocations; (model A's name, capture folder)."""
    sm, rt = replay_server.clients()
    name = unique("rpl-a")
    dest = tmp_path_factory.mktemp("replay-capture")
    deploy_capturing(sm, name, str(churn_model.artifact), str(dest))
    for row in csv_rows(churn_model.data.X[:ROWS]):
        rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=row)
    assert len(wait_records(dest, ROWS)) == ROWS
    sm.delete_endpoint(EndpointName=name)
    # One bad record beside the good ones: reported, not fatal.
    (dest / name / "bad.jsonl").write_text('{"captureData": {}}\n')
    return name, dest


def _temporaries(sm: Any, timeout_s: float = 60.0) -> list[str]:
    """The temporary endpoints left once deleting ones are gone (deletion is asynchronous)."""
    deadline = time.monotonic() + timeout_s
    while True:
        listed = sm.list_endpoints(NameContains="replay-", MaxResults=100)["Endpoints"]
        left = [e["EndpointName"] for e in listed if e["EndpointName"].startswith("replay-")]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def test_api_replay_to_the_same_model_agrees(
    replay_server: ModelhostServer, captured: tuple[str, Path]
) -> None:
    model_a, dest = captured
    sm, _rt = replay_server.clients()
    report = replay_server.call(
        "POST", "/api/replay", {"CaptureUri": str(dest), "ModelName": model_a}
    )
    assert report["ModelName"] == model_a
    assert report["Records"] == ROWS
    assert report["ExactAgreement"] == 1.0
    assert report["NumericAgreement"] == 1.0
    assert report["NumericDifference"]["MaxAbs"] == 0.0
    assert report["Candidate"]["ErrorRate"] == 0.0
    assert report["Candidate"]["LatencyP99Us"] >= report["Candidate"]["LatencyP50Us"] > 0
    assert len(report["BadRecords"]) == 1
    assert report["BadRecords"][0]["Source"].endswith("bad.jsonl")
    # The report is what the OpenAPI document describes.
    described = native_openapi()["paths"]["/api/replay"]["post"]["responses"]["200"]
    jsonschema.validate(report, _nullable(described["content"]["application/json"]["schema"]))
    assert report["OutputDrift"]["Captured"]["ks"] == 0.0
    assert _temporaries(sm) == []


def test_api_replay_validates_its_body(replay_server: ModelhostServer, tmp_path: Path) -> None:
    for body, field in (
        ({"CaptureUri": str(tmp_path)}, "ModelName"),
        ({"CaptureUri": str(tmp_path), "ModelName": "m", "Tolerance": -1}, "Tolerance"),
        ({"CaptureUri": str(tmp_path), "ModelName": "m"}, "CaptureUri"),
    ):
        with pytest.raises(urllib.error.HTTPError) as info:
            replay_server.call("POST", "/api/replay", body)
        assert info.value.code == 400
        err = json.loads(info.value.read())
        assert err["__type"] == "ValidationException"
        assert field in err["Message"]


def test_cli_replays_to_another_model(
    replay_server: ModelhostServer, captured: tuple[str, Path], tmp_path: Path
) -> None:
    _model_a, dest = captured
    sm, _rt = replay_server.clients()
    other = train_xgboost(make_churn(n_rows=2000, seed=8), num_round=100, seed=1)
    model_b = unique("rpl-b")
    sm.create_model(
        ModelName=model_b,
        PrimaryContainer={
            "Image": XGBOOST_IMAGE,
            "ModelDataUrl": str(write_xgboost_artifact(other, tmp_path / "b")),
        },
        ExecutionRoleArn=ROLE,
    )
    baseline = tmp_path / "baseline.csv"
    baseline.write_text("\n".join(str(x) for x in [0.05, 0.1, 0.2, 0.8, 0.9] * 4))
    out = tmp_path / "report.json"
    args = ["replay", "--url", replay_server.url, "--home", str(replay_server.home)]
    args += ["--capture", str(dest), "--model", model_b, "--tolerance", "1e-4"]
    args += ["--baseline", str(baseline), "--output", str(out)]
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 0, done.output
    report = json.loads(out.read_text())
    assert report["ModelName"] == model_b
    assert report["Records"] == ROWS
    assert report["Candidate"]["ErrorRate"] == 0.0
    assert report["NumericCompared"] == ROWS
    assert report["NumericAgreement"] < 1.0
    assert report["NumericDifference"]["MaxAbs"] > 1e-4
    assert set(report["OutputDrift"]) == {"Captured", "Baseline"}
    assert len(report["BadRecords"]) == 1
    assert _temporaries(sm) == []


class _BrokenRuntime:
    """A runtime client that breaks on the first invocation (the replayer's failure path)."""

    def invoke_endpoint(self, **_kwargs: Any) -> Any:
        raise RuntimeError("the network went away")


def test_temporary_endpoint_is_deleted_when_replaying_fails(
    replay_server: ModelhostServer, captured: tuple[str, Path]
) -> None:
    model_a, dest = captured
    sm, _rt = replay_server.clients()
    records, _bad = parse_captures([(str(p), p.read_text()) for p in dest.rglob("*.jsonl")])
    with pytest.raises(RuntimeError, match="network"):
        replay(sm, _BrokenRuntime(), model_a, records)
    assert _temporaries(sm) == []


def test_api_replays_from_s3_and_reports_a_failing_candidate(
    replay_server: ModelhostServer,
    captured: tuple[str, Path],
    failing_artifact: Path,
    s3_url: str,
) -> None:
    _model_a, dest = captured
    s3 = s3_client(s3_url)
    s3.create_bucket(Bucket="replay")
    for path in dest.rglob("*.jsonl"):
        s3.upload_file(str(path), "replay", f"capture/{path.relative_to(dest)}")
    sm, _rt = replay_server.clients()
    broken = unique("rpl-broken")
    sm.create_model(
        ModelName=broken,
        PrimaryContainer={"Image": XGBOOST_IMAGE, "ModelDataUrl": str(failing_artifact)},
        ExecutionRoleArn=ROLE,
    )
    report = replay_server.call(
        "POST", "/api/replay", {"CaptureUri": "s3://replay/capture/", "ModelName": broken}
    )
    assert report["Records"] == ROWS
    assert len(report["BadRecords"]) == 1
    assert report["BadRecords"][0]["Source"].startswith("s3://replay/capture/")
    assert report["Candidate"]["ErrorRate"] == 1.0
    assert report["NumericCompared"] == 0
    errors = report["Candidate"]["Errors"]
    assert len(errors) == 10
    assert all(e["Status"] >= 400 and e["Error"] for e in errors)
    assert _temporaries(sm) == []


def _nullable(schema: Any) -> Any:
    """OpenAPI 3.0's `nullable: true` as JSON Schema's `type: [t, "null"]`."""
    if isinstance(schema, list):
        return [_nullable(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _nullable(v) for k, v in schema.items() if k != "nullable"}
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out
