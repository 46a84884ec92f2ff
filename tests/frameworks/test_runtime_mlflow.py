"""The MLflow runtime: MLmodel folders, MLflow's scoring protocol plus SageMaker's CSV, errors."""

from __future__ import annotations

import importlib
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelhost.errors import DecodeError, InvalidInput, ModelLoadError
from modelhost.frameworks.base import Context, RuntimeOptions
from modelhost.frameworks.mlflow import MLflowRuntime, find_model_root, import_mlflow
from modelhost.frameworks.registry import select_runtime
from modelhost.testing.churn import FEATURE_NAMES, csv_rows, make_churn

# Imported at collection: tests/frameworks/conftest.py drops modules a test imports, and
# mlflow's protobuf modules cannot be registered twice in one process.
pd = pytest.importorskip("pandas")
mlflow = import_mlflow()
mlflow_sklearn = importlib.import_module("mlflow.sklearn")
from mlflow.models import infer_signature  # noqa: E402
from sklearn.tree import DecisionTreeClassifier  # noqa: E402

COLUMNS = list(FEATURE_NAMES)


@pytest.fixture(autouse=True)
def _no_tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing here should touch tracking; if something did, it must not write ./mlruns.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())


@pytest.fixture(scope="module")
def churn() -> Any:
    return make_churn(400, seed=3)


@pytest.fixture(scope="module")
def clf(churn: Any) -> Any:
    frame = pd.DataFrame(churn.X, columns=COLUMNS)
    return DecisionTreeClassifier(max_depth=4, random_state=0).fit(frame, churn.y)


def save_sklearn(clf: Any, X: np.ndarray, path: Path) -> Path:
    """An sklearn model as `mlflow.sklearn.save_model` writes it, signature from the data."""
    frame = pd.DataFrame(X, columns=COLUMNS)
    mlflow_sklearn.save_model(
        clf,
        str(path),
        signature=infer_signature(frame, clf.predict_proba(frame)),
        # skops (MLflow's default) is not a dependency; pip_requirements skips a slow scan.
        serialization_format="cloudpickle",
        pip_requirements=["scikit-learn"],
        pyfunc_predict_fn="predict_proba",
    )
    return path


@pytest.fixture(scope="module")
def sk_dir(clf: Any, churn: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_sklearn(clf, churn.X, tmp_path_factory.mktemp("mlflow") / "model")


@pytest.fixture(scope="module")
def loaded(sk_dir: Path) -> Iterator[MLflowRuntime]:
    runtime = MLflowRuntime(RuntimeOptions())
    runtime.load(sk_dir)
    yield runtime
    runtime.unload()


def _expected(clf: Any, X: np.ndarray) -> list[list[float]]:
    proba = clf.predict_proba(pd.DataFrame(np.asarray(X, np.float32), columns=COLUMNS))
    return [[float(v) for v in row] for row in proba]


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_detect_root_and_one_level_down(tmp_path: Path, sk_dir: Path) -> None:
    assert MLflowRuntime.detect(sk_dir) and find_model_root(sk_dir) == sk_dir
    wrapped = tmp_path / "wrapped"
    shutil.copytree(sk_dir, wrapped / "my-model")
    (wrapped / "code").mkdir()
    assert find_model_root(wrapped) == wrapped / "my-model"
    # model.pkl alone would be sklearn's; the MLmodel makes it MLflow's.
    assert isinstance(select_runtime("auto", sk_dir), MLflowRuntime)
    assert not MLflowRuntime.detect(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    assert not MLflowRuntime.detect(tmp_path / "empty")
    shutil.copytree(sk_dir, wrapped / "other-model")
    assert MLflowRuntime.detect(wrapped)
    with pytest.raises(ModelLoadError) as info:
        MLflowRuntime().load(wrapped)
    assert "several MLflow models (my-model, other-model/)" in info.value.message


def test_wrapped_folder_loads(tmp_path: Path, sk_dir: Path, clf: Any, churn: Any) -> None:
    shutil.copytree(sk_dir, tmp_path / "model")
    runtime = MLflowRuntime()
    runtime.load(tmp_path)
    body, _ = runtime.handle(
        "\n".join(csv_rows(churn.X[:2])).encode(), "text/csv", None, Context(".")
    )
    assert json.loads(body) == {"predictions": _expected(clf, churn.X[:2])}


def _bodies(X: np.ndarray) -> dict[str, tuple[str, bytes]]:
    rows = X.tolist()
    records = [dict(zip(COLUMNS, r, strict=True)) for r in rows]
    split = {"columns": COLUMNS, "data": rows}
    return {
        "csv": ("text/csv", "\n".join(csv_rows(X)).encode()),
        "csv-header": (
            "text/csv",
            pd.DataFrame(X, columns=COLUMNS).to_csv(index=False).encode(),
        ),
        "dataframe_split": ("application/json", json.dumps({"dataframe_split": split}).encode()),
        "dataframe_records": (
            "application/json",
            json.dumps({"dataframe_records": records}).encode(),
        ),
        "instances": ("application/json", json.dumps({"instances": rows}).encode()),
        "inputs": ("application/json", json.dumps({"inputs": rows}).encode()),
        "bare-rows": ("application/json", json.dumps(rows).encode()),
        "bare-records": ("application/json", json.dumps(records).encode()),
        "jsonlines": (
            "application/jsonlines",
            "\n".join(json.dumps(r) for r in rows).encode(),
        ),
        "jsonlines-records": (
            "application/jsonlines",
            "\n".join(json.dumps(r) for r in records).encode(),
        ),
        "npy": ("application/x-npy", _npy(X)),
    }


@pytest.mark.parametrize("kind", list(_bodies(np.zeros((1, len(COLUMNS))))))
def test_every_input_form_matches_in_process(
    loaded: MLflowRuntime, clf: Any, churn: Any, kind: str
) -> None:
    X = churn.X[:5]
    content_type, body = _bodies(X)[kind]
    out, media = loaded.handle(body, content_type, None, Context("."))
    assert media == "application/json"
    assert json.loads(out) == {"predictions": _expected(clf, X)}


def test_one_flat_row_and_guessed_types(loaded: MLflowRuntime, clf: Any, churn: Any) -> None:
    X = churn.X[:1]
    for body in (json.dumps(X[0].tolist()).encode(), csv_rows(X)[0].encode(), _npy(X[0])):
        out, _ = loaded.handle(body, None, None, Context("."))
        assert json.loads(out) == {"predictions": _expected(clf, X)}


@pytest.mark.parametrize("accept", ["text/csv", "application/jsonlines", "application/x-npy"])
def test_every_accept(loaded: MLflowRuntime, clf: Any, churn: Any, accept: str) -> None:
    X = churn.X[:3]
    out, media = loaded.handle("\n".join(csv_rows(X)).encode(), "text/csv", accept, Context("."))
    assert media == accept
    if accept == "text/csv":
        got = [[float(v) for v in line.split(",")] for line in out.decode().split("\n")]
    elif accept == "application/jsonlines":
        got = [json.loads(line) for line in out.decode().split("\n")]
    else:
        got = np.load(io.BytesIO(out)).tolist()
    assert got == _expected(clf, X)


def test_bad_inputs(loaded: MLflowRuntime, churn: Any) -> None:
    ctx = Context(".")
    with pytest.raises(InvalidInput) as info:
        loaded.handle(b"1,2,3", "text/csv", None, ctx)
    assert info.value.status_code == 400
    assert info.value.message == (
        "Feature count mismatch: the model's signature has 69 columns, row 1 has 3"
    )
    split = {"columns": COLUMNS[:3], "data": churn.X[:2, :3].tolist()}
    with pytest.raises(InvalidInput) as info:
        loaded.handle(
            json.dumps({"dataframe_split": split}).encode(), "application/json", None, ctx
        )
    assert "Model is missing inputs" in info.value.message and len(info.value.message) < 500
    for body, fragment in (
        (b'{"rows": [[1]]}', "expected exactly one of dataframe_split"),
        (b"{not json", "Malformed JSON"),
        (b'"text"', "Unsupported JSON shape"),
    ):
        with pytest.raises(DecodeError) as decode_info:
            loaded.handle(body, "application/json", None, ctx)
        assert decode_info.value.status_code == 415 and fragment in decode_info.value.message
    with pytest.raises(InvalidInput):
        loaded.handle(b"", "text/csv", None, ctx)


def _python_model(tmp_path: Path, name: str, signature_from: np.ndarray | None) -> Path:
    # A class defined in a function is pickled by value, like a user's notebook class.
    class Summary(mlflow.pyfunc.PythonModel):
        # A DataFrame hint: no MLflow type validation, and no "add type hints" warning.
        def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
            values = np.asarray(model_input, dtype=np.float64)
            return pd.DataFrame({"total": values.sum(axis=1), "label": "ok"})

    kwargs: dict[str, Any] = {}
    if signature_from is not None:
        kwargs["signature"] = infer_signature(signature_from, signature_from.sum(axis=1))
        kwargs["input_example"] = signature_from[:1]  # else MLflow warns at save
    path = tmp_path / name
    mlflow.pyfunc.save_model(
        str(path), python_model=Summary(), pip_requirements=["pandas"], **kwargs
    )
    return path


@pytest.mark.parametrize("signature", ["none", "tensor"])
def test_python_model_dataframe_output(tmp_path: Path, signature: str) -> None:
    X = np.array([[1.5, 2.0, 3.0], [4.0, 5.0, 6.25]])
    path = _python_model(tmp_path, signature, X if signature == "tensor" else None)
    runtime = MLflowRuntime()
    runtime.load(path)
    ctx = Context(".")
    csv_body = b"1.5,2,3\n4,5,6.25"
    records = [{"total": 6.5, "label": "ok"}, {"total": 15.25, "label": "ok"}]
    for body, content_type in (
        (csv_body, "text/csv"),
        (json.dumps({"inputs": X.tolist()}).encode(), "application/json"),
        (json.dumps(X.tolist()).encode(), "application/json"),
        (_npy(X), "application/x-npy"),
    ):
        out, _ = runtime.handle(body, content_type, None, ctx)
        assert json.loads(out) == {"predictions": records}
    out, _ = runtime.handle(csv_body, "text/csv", "text/csv", ctx)
    assert out == b"6.5,ok\n15.25,ok"
    out, _ = runtime.handle(csv_body, "text/csv", "application/jsonlines", ctx)
    assert [json.loads(line) for line in out.decode().split("\n")] == records
    if signature == "tensor":
        with pytest.raises(InvalidInput, match="signature has 3 columns, row 1 has 2"):
            runtime.handle(b"1,2", "text/csv", None, ctx)
    else:
        # Without a signature a non-numeric first line is a header, as MLflow reads CSV.
        out, _ = runtime.handle(b"a,b,c\n" + csv_body, "text/csv", None, ctx)
        assert json.loads(out) == {"predictions": records}


def test_broken_artifacts(tmp_path: Path, sk_dir: Path) -> None:
    with pytest.raises(ModelLoadError) as info:
        MLflowRuntime().load(tmp_path)
    assert "No MLmodel file" in info.value.message and "save_model" in info.value.message
    cases = {
        "garbage": lambda d: (d / "MLmodel").write_text("flavors: [unclosed\n  :"),
        "no-pickle": lambda d: (d / "model.pkl").unlink(),
        "no-pyfunc": lambda d: (d / "MLmodel").write_text("flavors:\n  sklearn: {}\n"),
        "missing-flavor-package": lambda d: (d / "MLmodel").write_text(
            (d / "MLmodel").read_text().replace("mlflow.sklearn", "mlflow_no_such_flavor")
        ),
    }
    messages = {}
    for name, breaks in cases.items():
        broken = tmp_path / name
        shutil.copytree(sk_dir, broken)
        breaks(broken)
        with pytest.raises(ModelLoadError) as info:
            MLflowRuntime().load(broken)
        messages[name] = info.value.message
        assert info.value.message.startswith("The MLflow model (MLmodel)"), info.value.message
    assert "model.pkl" in messages["no-pickle"]
    assert "python_function" in messages["no-pyfunc"]
    assert "'mlflow_no_such_flavor'" in messages["missing-flavor-package"]
    assert "install it" in messages["missing-flavor-package"]


def test_script_mode_over_mlflow_uses_the_signature(
    tmp_path: Path, sk_dir: Path, clf: Any, churn: Any
) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(sk_dir, model_dir)
    (model_dir / "code").mkdir()
    (model_dir / "code" / "inference.py").write_text(
        "import json\n\n"
        "def output_fn(prediction, accept):\n"
        "    return json.dumps({'churn': [row[1] for row in prediction.tolist()]})\n"
    )
    runtime = select_runtime("auto", model_dir)
    runtime.load(model_dir)
    X = churn.X[:3]
    out, _ = runtime.handle("\n".join(csv_rows(X)).encode(), "text/csv", None, Context("."))
    assert json.loads(out) == {"churn": [row[1] for row in _expected(clf, X)]}


def test_mlflow_is_imported_only_by_load() -> None:
    import inspect

    source = inspect.getsource(find_model_root) + inspect.getsource(MLflowRuntime.detect)
    assert "import_mlflow" not in source and "import mlflow" not in source
