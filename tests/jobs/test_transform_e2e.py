"""Transform jobs end to end: a real server, real instances, boto3's CreateTransformJob."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError

from modelhost.testing.churn import csv_rows
from modelhost.testing.server import ModelhostServer
from tests.jobs.support import native, transform
from tests.support import ChurnModel

pytestmark = pytest.mark.integration


def _write_csv(path: Path, X: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(csv_rows(X)) + "\n")
    return path


def _scores(path: Path) -> np.ndarray:
    return np.array([float(x) for x in path.read_text().split()], dtype=np.float32)


def test_boto3_flow_split_line_multi_record(
    sm: Any, server: ModelhostServer, churn_model: ChurnModel, churn_model_name: str, tmp_path: Path
) -> None:
    """The seeds' transformer.transform(data=prefix, content_type='text/csv',
    split_type='Line') through boto3: two objects, several mini-batches each, two
    instances."""
    X = churn_model.data.X
    _write_csv(tmp_path / "in" / "part-a.csv", X[:1200])
    _write_csv(tmp_path / "in" / "sub" / "part-b.csv", X[1200:])
    d = transform(
        sm,
        churn_model_name,
        str(tmp_path / "in"),
        str(tmp_path / "out"),
        BatchStrategy="MultiRecord",
        MaxPayloadInMB=1,
        MaxConcurrentTransforms=2,
        ModelClientConfig={"InvocationsTimeoutInSeconds": 60, "InvocationsMaxRetries": 1},
        InstanceCount=2,
    )
    assert d["TransformJobStatus"] == "Completed", d.get("FailureReason")
    assert d["TransformInput"]["SplitType"] == "Line"
    assert d["TransformJobArn"].endswith(":transform-job/" + d["TransformJobName"].lower())
    expected = churn_model.expected(X)
    a = _scores(tmp_path / "out" / "part-a.csv.out")
    b = _scores(tmp_path / "out" / "sub" / "part-b.csv.out")
    np.testing.assert_allclose(np.concatenate([a, b]), expected, rtol=1e-6)
    listed = sm.list_transform_jobs(NameContains=d["TransformJobName"])
    assert [s["TransformJobStatus"] for s in listed["TransformJobSummaries"]] == ["Completed"]
    ext = native(server.url, f"/api/transform-jobs/{d['TransformJobName']}")["Modelhost"]
    assert ext["Progress"]["RecordsDone"] == len(X)


@pytest.mark.parametrize(
    ("strategy", "split"), [("SingleRecord", "Line"), ("MultiRecord", "Line"), (None, "None")]
)
def test_csv_each_strategy(
    sm: Any,
    churn_model: ChurnModel,
    churn_model_name: str,
    tmp_path: Path,
    strategy: str | None,
    split: str,
) -> None:
    X = churn_model.data.X[:150]
    _write_csv(tmp_path / "in" / "x.csv", X)
    extra: dict[str, Any] = {"MaxConcurrentTransforms": 4}
    if strategy:
        extra["BatchStrategy"] = strategy
    d = transform(
        sm, churn_model_name, str(tmp_path / "in"), str(tmp_path / "out"), split=split, **extra
    )
    assert d["TransformJobStatus"] == "Completed", d.get("FailureReason")
    out = _scores(tmp_path / "out" / "x.csv.out")
    np.testing.assert_allclose(out, churn_model.expected(X), rtol=1e-6)


@pytest.mark.parametrize("strategy", ["SingleRecord", "MultiRecord"])
def test_json_lines_each_strategy(
    sm: Any, churn_model: ChurnModel, churn_model_name: str, tmp_path: Path, strategy: str
) -> None:
    X = churn_model.data.X[:120]
    (tmp_path / "in").mkdir()
    lines = [json.dumps({"features": [float(v) for v in row]}) for row in X.tolist()]
    (tmp_path / "in" / "x.jsonl").write_text("\n".join(lines) + "\n")
    d = transform(
        sm,
        churn_model_name,
        str(tmp_path / "in"),
        str(tmp_path / "out"),
        content_type="application/jsonlines",
        Accept="application/jsonlines",
        BatchStrategy=strategy,
        MaxPayloadInMB=1,
    )
    assert d["TransformJobStatus"] == "Completed", d.get("FailureReason")
    text = (tmp_path / "out" / "x.jsonl.out").read_text()
    out = [json.loads(x)["score"] for x in text.splitlines()]
    np.testing.assert_allclose(out, churn_model.expected(X), rtol=1e-5)


def test_join_and_filters_csv_id_plus_prediction(
    sm: Any, churn_model: ChurnModel, churn_model_name: str, tmp_path: Path
) -> None:
    """The reference's example: InputFilter $[1:], JoinSource Input, OutputFilter $[0,-1]."""
    X = churn_model.data.X[:200]
    ids = [f"cust-{i}" for i in range(len(X))]
    (tmp_path / "in").mkdir()
    rows = [f"{i},{r}" for i, r in zip(ids, csv_rows(X), strict=True)]
    (tmp_path / "in" / "c.csv").write_text("\n".join(rows) + "\n")
    d = transform(
        sm,
        churn_model_name,
        str(tmp_path / "in"),
        str(tmp_path / "out"),
        BatchStrategy="MultiRecord",
        DataProcessing={"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"},
    )
    assert d["TransformJobStatus"] == "Completed", d.get("FailureReason")
    lines = (tmp_path / "out" / "c.csv.out").read_text().splitlines()
    assert [line.split(",")[0] for line in lines] == ids
    scores = np.array([float(line.split(",")[1]) for line in lines])
    np.testing.assert_allclose(scores, churn_model.expected(X), rtol=1e-6)


def test_gzip_input_and_manifest(
    sm: Any, churn_model: ChurnModel, churn_model_name: str, tmp_path: Path
) -> None:
    X = churn_model.data.X[:300]
    data = tmp_path / "data"
    data.mkdir()
    (data / "one.csv.gz").write_bytes(gzip.compress(("\n".join(csv_rows(X[:100])) + "\n").encode()))
    (data / "two.csv.gz").write_bytes(gzip.compress(("\n".join(csv_rows(X[100:])) + "\n").encode()))
    (data / "ignored.csv.gz").write_bytes(b"not listed in the manifest")
    manifest = tmp_path / "input.manifest"
    manifest.write_text(json.dumps([{"prefix": f"file://{data}/"}, "one.csv.gz", "two.csv.gz"]))
    d = transform(
        sm,
        churn_model_name,
        str(manifest),
        str(tmp_path / "out"),
        data_type="ManifestFile",
        CompressionType="Gzip",
        BatchStrategy="MultiRecord",
    )
    assert d["TransformJobStatus"] == "Completed", d.get("FailureReason")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "one.csv.gz.out",
        "two.csv.gz.out",
    ]
    out = np.concatenate(
        [_scores(tmp_path / "out" / "one.csv.gz.out"), _scores(tmp_path / "out" / "two.csv.gz.out")]
    )
    np.testing.assert_allclose(out, churn_model.expected(X), rtol=1e-6)


def test_bad_record_fails_the_job_with_object_record_and_message(
    sm: Any, churn_model: ChurnModel, churn_model_name: str, tmp_path: Path
) -> None:
    X = churn_model.data.X[:500]
    rows = csv_rows(X)
    rows[336] = "1,2,not-a-number," + rows[336].split(",", 3)[3]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "bad.csv").write_text("\n".join(rows) + "\n")
    _write_csv(tmp_path / "in" / "good.csv", X[:50])
    d = transform(
        sm,
        churn_model_name,
        str(tmp_path / "in"),
        str(tmp_path / "out"),
        BatchStrategy="MultiRecord",
    )
    assert d["TransformJobStatus"] == "Failed"
    reason = d["FailureReason"]
    assert "bad.csv" in reason and "record 337" in reason and "not-a-number" in reason, reason
    # The failed object has no output; the other object's output stays.
    assert not (tmp_path / "out" / "bad.csv.out").exists()
    np.testing.assert_allclose(
        _scores(tmp_path / "out" / "good.csv.out"), churn_model.expected(X[:50]), rtol=1e-6
    )


def test_validation_and_stop(sm: Any, churn_model_name: str, tmp_path: Path) -> None:
    with pytest.raises(ClientError, match="BatchStrategy MultiRecord needs SplitType Line"):
        transform(
            sm,
            churn_model_name,
            str(tmp_path),
            str(tmp_path),
            split="None",
            BatchStrategy="MultiRecord",
        )
    with pytest.raises(ClientError, match="MaxPayloadInMB"):
        transform(
            sm,
            churn_model_name,
            str(tmp_path),
            str(tmp_path),
            MaxConcurrentTransforms=20,
            MaxPayloadInMB=6,
        )
    with pytest.raises(ClientError, match="Could not find model"):
        transform(sm, "no-such-model", str(tmp_path), str(tmp_path))
    with pytest.raises(ClientError) as info:
        sm.describe_transform_job(TransformJobName="no-such-job")
    assert info.value.response["Error"]["Code"] == "ValidationException"
