"""`modelhost transform` / `modelhost jobs`, and the prediction-store option on a job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelhost.cli.jobs import progress_line
from modelhost.testing.churn import csv_rows
from modelhost.testing.server import ModelhostServer
from tests.jobs.support import native, transform
from tests.support import ChurnModel, cli, unique

pytestmark = pytest.mark.integration


def test_progress_line_estimates_the_total_from_bytes() -> None:
    ext = {"Progress": {"RecordsDone": 500, "BytesDone": 50, "BytesTotal": 100}}
    assert progress_line(ext, 2.0, width=10) == (
        "[#####.....] 500/1,000 records  250 rec/s  ETA 2 s"
    )


def test_cli_transform_with_store_then_jobs(
    server: ModelhostServer, churn_model: ChurnModel, churn_model_name: str, tmp_path: Path
) -> None:
    X = churn_model.data.X[:100]
    (tmp_path / "in").mkdir()
    ids = [f"c{i}" for i in range(len(X))]
    rows = [f"{i},{r}" for i, r in zip(ids, csv_rows(X), strict=True)]
    (tmp_path / "in" / "x.csv").write_text("\n".join(rows) + "\n")
    name = unique("cli-tj")
    out = cli(
        server,
        "transform",
        churn_model_name,
        str(tmp_path / "in"),
        str(tmp_path / "out"),
        "--name",
        name,
        "--input-filter",
        "$[1:]",
        "--join-input",
        "--output-filter",
        "$[0,-1]",
        "--store",
        "churn-scores",
        "--key",
        "0",
    )
    assert out.returncode == 0, out.stderr
    assert f"transform job {name}: Completed" in out.stdout
    assert "100/100 records" in out.stderr
    lines = (tmp_path / "out" / "x.csv.out").read_text().splitlines()
    assert [line.split(",")[0] for line in lines] == ids
    np.testing.assert_allclose(
        [float(line.split(",")[1]) for line in lines], churn_model.expected(X), rtol=1e-6
    )
    listed = cli(server, "jobs")
    assert any(line.split()[:2] == [name, "Completed"] for line in listed.stdout.splitlines())
    described = cli(server, "jobs", "describe", name)
    assert '"StoreName": "churn-scores"' in described.stdout
    stopped = cli(server, "jobs", "stop", name)  # a finished job: a no-op
    assert stopped.returncode == 0
    # --store loaded the joined output lines, keyed by the input's first column.
    got = cli(server, "predictions", "get", "churn-scores", "c7")
    assert got.returncode == 0, got.stderr
    key, value = got.stdout.strip().split("\t")
    assert key == "c7" and value.split(",")[0] == "c7"
    assert float(value.split(",")[1]) == pytest.approx(float(churn_model.expected(X)[7]), rel=1e-6)


def test_prediction_store_option_through_boto3_tags(
    sm: Any, server: ModelhostServer, churn_model: ChurnModel, churn_model_name: str, tmp_path: Path
) -> None:
    """The seeds' nightly pattern: a job keyed by customer id loads its scores into a
    store before it reports Completed; a web page then reads one customer's score by key."""
    X = churn_model.data.X[:50]
    (tmp_path / "in").mkdir()
    rows = [f"cust-{i},{r}" for i, r in enumerate(csv_rows(X))]
    (tmp_path / "in" / "x.csv").write_text("\n".join(rows) + "\n")
    store = unique("nightly")
    d = transform(
        sm,
        churn_model_name,
        str(tmp_path / "in"),
        str(tmp_path / "out"),
        DataProcessing={"InputFilter": "$[1:]"},
        Tags=[
            {"Key": "modelhost:prediction-store", "Value": store},
            {"Key": "modelhost:prediction-key", "Value": "0"},
        ],
    )
    assert d["TransformJobStatus"] == "Completed", d.get("FailureReason")
    ext = native(server.url, f"/api/transform-jobs/{d['TransformJobName']}")["Modelhost"]
    assert ext["PredictionStore"]["StoreName"] == store
    assert ext["PredictionStore"]["KeyCount"] == len(X)
    expected = churn_model.expected(X)
    for i in (0, 17, 49):
        got = native(server.url, f"/predictions/{store}/cust-{i}")
        assert float(got["Prediction"]) == pytest.approx(float(expected[i]), rel=1e-6)
    # A key column the input does not have: the outputs are written, the job says why
    # the load failed, and the store keeps its current run.
    d = transform(
        sm,
        churn_model_name,
        str(tmp_path / "in"),
        str(tmp_path / "out2"),
        DataProcessing={"InputFilter": "$[1:]"},
        Tags=[
            {"Key": "modelhost:prediction-store", "Value": store},
            {"Key": "modelhost:prediction-key", "Value": "CustomerId"},
        ],
    )
    assert d["TransformJobStatus"] == "Failed"
    assert f"loading them into prediction store {store} failed" in d["FailureReason"]
    assert (tmp_path / "out2" / "x.csv.out").exists()
    assert native(server.url, f"/predictions/{store}")["KeyCount"] == len(X)
    with pytest.raises(Exception, match="needs both a store name and a key column"):
        transform(
            sm,
            churn_model_name,
            str(tmp_path / "in"),
            str(tmp_path / "out"),
            Tags=[{"Key": "modelhost:prediction-store", "Value": "nightly"}],
        )
