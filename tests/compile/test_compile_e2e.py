"""Compilation jobs through boto3: compile, deploy with the Neo image, answers as native."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelhost.testing.churn import csv_body
from tests.compile.conftest import FEATURES, Case, data, tar_members
from tests.support import deploy, unique

pytestmark = pytest.mark.integration

ROLE = "arn:aws:iam::123456789012:role/modelhost"


def compile_job(
    sm: Any, artifact: str, framework: str, out: Path, shape: str | None = None
) -> dict[str, Any]:
    """CreateCompilationJob as the SageMaker SDK's Model.compile sends it, then wait."""
    name = unique("neo")
    sm.create_compilation_job(
        CompilationJobName=name,
        RoleArn=ROLE,
        InputConfig={
            "S3Uri": artifact,
            "DataInputConfig": shape or f'{{"data": [1, {FEATURES}]}}',
            "Framework": framework,
        },
        OutputConfig={"S3OutputLocation": str(out), "TargetDevice": "ml_m5"},
        StoppingCondition={"MaxRuntimeInSeconds": 300},
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        job = sm.describe_compilation_job(CompilationJobName=name)
        if job["CompilationJobStatus"] in ("COMPLETED", "FAILED", "STOPPED"):
            return dict(job)
        time.sleep(0.3)
    raise AssertionError(f"compilation job {name} did not finish")


@pytest.mark.parametrize("kind", ["xgb-binary", "xgb-reg", "xgb-multi", "lightgbm", "sklearn-gb"])
def test_compile_deploy_and_answer_as_native(
    sm: Any, rt: Any, cases: dict[str, Case], tmp_path: Path, kind: str
) -> None:
    case = cases[kind]
    job = compile_job(sm, str(case.artifact), case.framework, tmp_path / "out")
    assert job["CompilationJobStatus"] == "COMPLETED", job.get("FailureReason")
    artifact = job["ModelArtifacts"]["S3ModelArtifacts"]
    assert artifact.endswith("model-ml_m5.tar.gz") and Path(artifact).is_file()
    assert "-neo" in job["InferenceImage"]
    assert len(job["ModelDigests"]["ArtifactDigest"]) == 64
    name = unique(f"neo-{kind}")
    deploy(sm, name, artifact, image=job["InferenceImage"])
    try:
        x, _ = data(seed=3, missing=kind != "sklearn-gb")
        x = x[:20]
        body = csv_body(x)
        resp = rt.invoke_endpoint(
            EndpointName=name, Body=body, ContentType="text/csv", Accept="application/json"
        )
        answer = json.loads(resp["Body"].read())
        expected = case.expected(x)
        if kind == "sklearn-gb":  # the scikit-learn runtime's answer: class labels
            assert answer == expected.tolist()
        else:  # XGBoost's and LightGBM's: {"predictions": [{"score": ...}]}
            got = np.array([p["score"] for p in answer["predictions"]])
            np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)
    finally:
        sm.delete_endpoint(EndpointName=name)


def test_list_stop_delete(sm: Any, cases: dict[str, Case], tmp_path: Path) -> None:
    job = compile_job(sm, str(cases["xgb-binary"].artifact), "XGBOOST", tmp_path)
    name = job["CompilationJobName"]
    listed = sm.list_compilation_jobs(NameContains=name)["CompilationJobSummaries"]
    assert [j["CompilationJobName"] for j in listed] == [name]
    assert listed[0]["CompilationTargetDevice"] == "ml_m5"
    sm.stop_compilation_job(CompilationJobName=name)  # finished: a no-op
    sm.delete_compilation_job(CompilationJobName=name)
    with pytest.raises(sm.exceptions.ResourceNotFound):
        sm.describe_compilation_job(CompilationJobName=name)


def test_corrupt_artifact_fails_with_reason(sm: Any, tmp_path: Path) -> None:
    bad = tar_members(tmp_path / "model.tar.gz", {"xgboost-model": b"not a model at all"})
    job = compile_job(sm, str(bad), "XGBOOST", tmp_path / "out")
    assert job["CompilationJobStatus"] == "FAILED"
    assert "xgboost-model" in job["FailureReason"]


def test_unsupported_framework_fails_with_reason(
    sm: Any, cases: dict[str, Case], tmp_path: Path
) -> None:
    job = compile_job(sm, str(cases["xgb-binary"].artifact), "TENSORFLOW", tmp_path)
    assert job["CompilationJobStatus"] == "FAILED"
    assert "TENSORFLOW is not supported" in job["FailureReason"]
    assert "XGBOOST" in job["FailureReason"]


def test_shape_mismatch_fails_and_bad_shape_is_rejected(
    sm: Any, cases: dict[str, Case], tmp_path: Path
) -> None:
    job = compile_job(sm, str(cases["xgb-reg"].artifact), "XGBOOST", tmp_path, '{"data": [1, 3]}')
    assert job["CompilationJobStatus"] == "FAILED"
    assert f"takes {FEATURES}" in job["FailureReason"]
    with pytest.raises(sm.exceptions.ClientError, match="DataInputConfig"):
        compile_job(sm, str(cases["xgb-reg"].artifact), "XGBOOST", tmp_path, "{not json")
