"""LightGBM and ONNX models deployed and invoked through boto3, compared to in-process."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import onnxruntime as ort
import pytest
from botocore.exceptions import ClientError, WaiterError
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelhost.testing.churn import ChurnData, csv_rows
from tests.support import deploy, unique

pytestmark = pytest.mark.integration

ONNX_URI = "123456789012.dkr.ecr.us-east-1.amazonaws.com/onnx-inference:1.31"
ROWS = 6


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


@pytest.fixture(scope="module")
def lgb_model(
    churn_data: ChurnData, tmp_path_factory: pytest.TempPathFactory
) -> tuple[lgb.Booster, Path]:
    params = {"objective": "binary", "verbose": -1, "num_threads": 1, "seed": 0}
    booster = lgb.train(params, lgb.Dataset(churn_data.X, churn_data.y), num_boost_round=50)
    out = tmp_path_factory.mktemp("lgb")
    return booster, _tar(out / "model.tar.gz", {"model.txt": booster.model_to_string().encode()})


@pytest.fixture(scope="module")
def onnx_model(
    churn_data: ChurnData, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Any, Any, Path]:
    """A scikit-learn pipeline and its skl2onnx graph (default ZipMap probabilities)."""
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    clf.fit(churn_data.X, churn_data.y.astype(int))
    graph = to_onnx(clf, initial_types=[("input", FloatTensorType([None, 69]))])
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    out = tmp_path_factory.mktemp("onnx")
    return clf, session, _tar(out / "model.tar.gz", {"model.onnx": graph.SerializeToString()})


@contextmanager
def _endpoint(sm: Any, prefix: str, artifact: Path, image: str | None) -> Iterator[str]:
    name = unique(prefix)
    deploy(sm, name, str(artifact), image=image)
    try:
        yield name
    finally:
        sm.delete_endpoint(EndpointName=name)


def _invoke(rt: Any, name: str, body: bytes | str, ctype: str, accept: str | None = None) -> Any:
    kwargs = {"Accept": accept} if accept else {}
    resp = rt.invoke_endpoint(EndpointName=name, ContentType=ctype, Body=body, **kwargs)
    return resp["ContentType"], resp["Body"].read()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _bodies(X: np.ndarray) -> dict[str, bytes]:
    rows = X.tolist()
    libsvm = "\n".join(" ".join(f"{j}:{v!r}" for j, v in enumerate(r) if v) for r in rows)
    return {
        "text/csv": "\n".join(csv_rows(X)).encode(),
        "application/json": json.dumps({"instances": rows}).encode(),
        "application/jsonlines": "\n".join(json.dumps(r) for r in rows).encode(),
        "application/x-npy": _npy(X),
        "text/libsvm": libsvm.encode(),
    }


def _scores(ctype: str, body: bytes) -> np.ndarray:
    if ctype.startswith("text/csv"):
        return np.array(body.split(), dtype=np.float64)
    if ctype.startswith("application/x-npy"):
        return np.load(io.BytesIO(body))
    if ctype.startswith("application/jsonlines"):
        return np.array([json.loads(line)["score"] for line in body.splitlines()])
    return np.array([p["score"] for p in json.loads(body)["predictions"]])


@pytest.mark.parametrize("image", ["lightgbm", None], ids=["image", "auto-detect"])
def test_lightgbm_every_content_type(
    sm: Any, rt: Any, churn_data: ChurnData, lgb_model: Any, image: str | None
) -> None:
    booster, artifact = lgb_model
    X = churn_data.X[:ROWS]
    expected = booster.predict(X)
    with _endpoint(sm, "lgb", artifact, image) as name:
        ctype, body = _invoke(rt, name, "\n".join(csv_rows(X)), "text/csv")
        assert ctype == "text/csv"  # the default Accept, as SageMaker's XGBoost
        np.testing.assert_allclose(_scores(ctype, body), expected, rtol=0, atol=1e-6)
        for content_type, payload in _bodies(X).items():
            for accept in (
                "text/csv",
                "application/json",
                "application/jsonlines",
                "application/x-npy",
            ):
                got_type, got = _invoke(rt, name, payload, content_type, accept)
                assert got_type == accept
                np.testing.assert_allclose(_scores(got_type, got), expected, rtol=0, atol=1e-6)
        _assert_feature_mismatch(rt, name, "1,2,3", "69", "3")


@pytest.mark.parametrize("image", ["onnx", None], ids=["image", "auto-detect"])
def test_onnx_every_content_type(
    sm: Any, rt: Any, churn_data: ChurnData, onnx_model: Any, image: str | None
) -> None:
    clf, session, artifact = onnx_model
    X = churn_data.X[:ROWS]
    labels = session.run(None, {"input": X})[0].tolist()
    assert labels == clf.predict(X).astype(int).tolist()
    with _endpoint(sm, "onnx", artifact, image) as name:
        bodies = _bodies(X)
        del bodies["text/libsvm"]
        for content_type, payload in bodies.items():
            ctype, body = _invoke(rt, name, payload, content_type)
            assert ctype == "application/json"  # the runtime's default Accept
            assert json.loads(body) == {"predictions": labels}
            ctype, body = _invoke(rt, name, payload, content_type, "text/csv")
            assert body.decode().split() == [str(v) for v in labels]
            ctype, body = _invoke(rt, name, payload, content_type, "application/jsonlines")
            assert [json.loads(line) for line in body.splitlines()] == labels
            ctype, body = _invoke(rt, name, payload, content_type, "application/x-npy")
            assert np.load(io.BytesIO(body)).tolist() == labels
        _assert_feature_mismatch(rt, name, "1,2,3", "69", "3")


def test_onnx_probabilities_selected_by_environment(
    sm: Any, rt: Any, churn_data: ChurnData, onnx_model: Any
) -> None:
    clf, session, artifact = onnx_model
    X = churn_data.X[:ROWS]
    name = unique("onnx-proba")
    deploy(
        sm,
        name,
        str(artifact),
        image=ONNX_URI,
        environment={"MH_INSTANCE_ONNX_OUTPUT": "output_probability"},
    )
    try:
        zipmap = session.run(None, {"input": X})[1]  # a list of {class: probability}
        in_process = np.array([[row[k] for k in sorted(row)] for row in zipmap])
        _, body = _invoke(rt, name, "\n".join(csv_rows(X)), "text/csv")
        served = np.array(json.loads(body)["predictions"])
        assert served.shape == (ROWS, 2)
        np.testing.assert_allclose(served, in_process, rtol=0, atol=1e-6)
        # The graph computes in float32, scikit-learn in float64.
        np.testing.assert_allclose(served, clf.predict_proba(X), rtol=0, atol=1e-5)
    finally:
        sm.delete_endpoint(EndpointName=name)


def _assert_feature_mismatch(rt: Any, name: str, body: str, *numbers: str) -> None:
    with pytest.raises(ClientError) as exc:
        rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=body)
    resp = exc.value.response
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert resp["Error"]["Code"] == "ModelError"
    assert resp["OriginalStatusCode"] == 400
    assert "Feature count mismatch" in resp["OriginalMessage"]
    assert all(n in resp["OriginalMessage"] for n in numbers)


def _wait_failed(sm: Any, name: str) -> str:
    with pytest.raises(WaiterError, match=r"Failed|failure"):
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 60}
        )
    desc = sm.describe_endpoint(EndpointName=name)
    assert desc["EndpointStatus"] == "Failed"
    return str(desc["FailureReason"])


def test_truncated_lightgbm_model_fails_with_reason(
    sm: Any, lgb_model: Any, tmp_path: Path
) -> None:
    booster, _ = lgb_model
    text = booster.model_to_string().encode()
    artifact = _tar(tmp_path / "model.tar.gz", {"model.txt": text[: len(text) // 3]})
    name = unique("lgb-cut")
    deploy(sm, name, str(artifact), image="lightgbm", wait=False)
    reason = _wait_failed(sm, name)
    assert "model.txt is truncated" in reason and "save_model" in reason
    sm.delete_endpoint(EndpointName=name)


def test_garbage_onnx_model_fails_with_reason(sm: Any, tmp_path: Path) -> None:
    artifact = _tar(tmp_path / "model.tar.gz", {"model.onnx": b"\x08\x07garbage" * 50})
    name = unique("onnx-bad")
    deploy(sm, name, str(artifact), image="onnx", wait=False)
    reason = _wait_failed(sm, name)
    assert "model.onnx is not an ONNX model onnxruntime" in reason
    sm.delete_endpoint(EndpointName=name)
