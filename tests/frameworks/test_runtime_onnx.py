"""The ONNX runtime: graphs from skl2onnx and onnx.helper, every format, errors."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelhost.errors import (
    DecodeError,
    InvalidInput,
    ModelLoadError,
    PredictionFailed,
    UnsupportedAccept,
    UnsupportedContentType,
)
from modelhost.frameworks.base import Context, RuntimeOptions
from modelhost.frameworks.onnx import OUTPUT_ENV, ONNXRuntime
from modelhost.frameworks.registry import select_runtime
from tests.frameworks.fw_support import N_FEATURES, csv_body

W = np.array([[1.5], [-2.0], [0.25]], dtype=np.float32)
B = np.array([0.5], dtype=np.float32)
X3 = np.array([[0.1, 0.2, 0.3], [1.0, -1.0, 2.5], [3.25, 0.0, -7.5]], dtype=np.float32)


def _model(
    nodes: list[Any],
    inputs: list[Any],
    outputs: list[Any],
    initializers: tuple[np.ndarray, ...] = (),
    names: tuple[str, ...] = (),
) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        inputs,
        outputs,
        [numpy_helper.from_array(a, n) for a, n in zip(initializers, names, strict=True)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # onnxruntime reads IR ≤ 10; the default may be newer
    onnx.checker.check_model(model)
    return model


def _write(tmp_path: Path, name: str, model: onnx.ModelProto, file: str = "model.onnx") -> Path:
    model_dir = tmp_path / name
    model_dir.mkdir()
    (model_dir / file).write_bytes(model.SerializeToString())
    return model_dir


def _value(name: str, kind: int, shape: list[Any]) -> Any:
    return helper.make_tensor_value_info(name, kind, shape)


@pytest.fixture(scope="module")
def linear_model() -> onnx.ModelProto:
    """A hand-built linear regression, Y = X·W + B, with a symbolic batch axis."""
    nodes = [
        helper.make_node("MatMul", ["X", "W"], ["XW"]),
        helper.make_node("Add", ["XW", "B"], ["Y"]),
    ]
    inputs = [_value("X", TensorProto.FLOAT, ["N", 3])]
    outputs = [_value("Y", TensorProto.FLOAT, ["N", 1])]
    return _model(nodes, inputs, outputs, (W, B), ("W", "B"))


@pytest.fixture(scope="module")
def classifier(data: tuple[np.ndarray, np.ndarray]) -> Any:
    X, y = data
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)


def _convert(clf: Any, zipmap: bool) -> onnx.ModelProto:
    options = {"zipmap": zipmap}
    return to_onnx(
        clf, initial_types=[("input", FloatTensorType([None, N_FEATURES]))], options=options
    )


@pytest.fixture(scope="module")
def clf_models(classifier: Any) -> dict[bool, onnx.ModelProto]:
    return {zipmap: _convert(classifier, zipmap) for zipmap in (False, True)}


def _loaded(model_dir: Path, output: str | None = None, **options: Any) -> ONNXRuntime:
    runtime = ONNXRuntime(RuntimeOptions(**options), output=output)
    runtime.load(model_dir)
    return runtime


def _call(runtime: ONNXRuntime, body: bytes, ctype: str | None, accept: str | None = None) -> Any:
    out, media = runtime.handle(body, ctype, accept, Context(str(runtime.model_dir)))
    if media == "application/json":
        return json.loads(out)["predictions"]
    if media == "application/x-npy":
        return np.load(io.BytesIO(out))
    if media == "application/jsonlines":
        return [json.loads(line) for line in out.splitlines()]
    return [[float(v) for v in line.split(b",")] for line in out.split(b"\n")]


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _in_process(model: onnx.ModelProto, feeds: dict[str, Any], output: int = 0) -> Any:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[output]


def test_linear_regression_every_format(tmp_path: Path, linear_model: Any) -> None:
    runtime = _loaded(_write(tmp_path, "lin", linear_model))
    expected = _in_process(linear_model, {"X": X3})
    np.testing.assert_allclose(expected, X3 @ W + B, rtol=1e-6)
    rows = X3.tolist()
    bodies = {
        "text/csv": csv_body(X3),
        "application/json": json.dumps(rows).encode(),
        "application/jsonlines": "\n".join(json.dumps(r) for r in rows).encode(),
        "application/x-npy": _npy(X3),
    }
    for ctype, body in bodies.items():
        for accept in (
            "application/json",
            "text/csv",
            "application/jsonlines",
            "application/x-npy",
        ):
            got = _call(runtime, body, ctype, accept)
            np.testing.assert_allclose(np.asarray(got), expected, rtol=0, atol=1e-6)
    for doc in ({"instances": rows}, {"inputs": rows}, {"features": rows[0]}, rows[0]):
        got = _call(runtime, json.dumps(doc).encode(), "application/json")
        np.testing.assert_allclose(got, expected[: len(got)], rtol=0, atol=1e-6)
    v2 = {"inputs": [{"name": "X", "shape": [1, 3], "datatype": "FP32", "data": rows[1]}]}
    np.testing.assert_allclose(_call(runtime, json.dumps(v2).encode(), None), expected[1:2])
    # No Content-Type: npy by its magic, JSON by its bracket, else CSV.
    np.testing.assert_allclose(_call(runtime, _npy(X3[0]), None), expected[:1], atol=1e-6)
    np.testing.assert_allclose(_call(runtime, csv_body(X3), None), expected, atol=1e-6)


def test_default_accept_is_json_predictions(tmp_path: Path, linear_model: Any) -> None:
    runtime = _loaded(_write(tmp_path, "lin", linear_model))
    body, media = runtime.handle(b"1,2,3", "text/csv", None, Context(str(runtime.model_dir)))
    assert media == "application/json"
    assert json.loads(body) == {"predictions": [[-1.25]]}
    runtime = _loaded(runtime.model_dir or tmp_path, default_accept="text/csv", batch=True)
    body, media = runtime.handle(b"1,2,3\n1,2,3", "text/csv", None, Context(""))
    assert (body, media) == (b"-1.25\n-1.25\n", "text/csv")


def test_classifier_without_zipmap(
    tmp_path: Path, classifier: Any, clf_models: Any, data: Any
) -> None:
    X, _ = data
    model_dir = _write(tmp_path, "clf", clf_models[False])
    labels = _call(_loaded(model_dir), csv_body(X[:20]), "text/csv")
    assert labels == classifier.predict(X[:20]).tolist()
    runtime = _loaded(model_dir, output="probabilities")
    assert runtime.output_name == "probabilities"
    got = np.asarray(_call(runtime, csv_body(X[:20]), "text/csv"))
    np.testing.assert_allclose(got, _in_process(clf_models[False], {"input": X[:20]}, 1), atol=1e-6)
    # float32 graph vs float64 scikit-learn: agree to float32 precision.
    np.testing.assert_allclose(got, classifier.predict_proba(X[:20]), rtol=0, atol=1e-5)


def test_zipmap_probabilities_are_plain_arrays(
    tmp_path: Path, classifier: Any, clf_models: Any, data: Any
) -> None:
    X, _ = data
    model_dir = _write(tmp_path, "zip", clf_models[True])
    runtime = _loaded(model_dir, onnx_output="output_probability")
    expected = _in_process(clf_models[False], {"input": X[:5]}, 1)
    for accept in ("application/json", "text/csv", "application/jsonlines"):
        got = _call(runtime, csv_body(X[:5]), "text/csv", accept)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    array = _call(runtime, csv_body(X[:5]), "text/csv", "application/x-npy")
    assert array.dtype == np.float32 and array.shape == (5, 2)
    # an index works too
    assert _loaded(model_dir, onnx_output="1").output_name == "output_probability"
    with pytest.raises(ModelLoadError) as info:
        _loaded(model_dir, onnx_output="proba")
    assert info.value.message == (
        f"{OUTPUT_ENV}='proba' names no output of model.onnx: its outputs are output_label, "
        "output_probability (give a name or an index)"
    )


def test_feature_count_and_shape_mismatch(tmp_path: Path, linear_model: Any) -> None:
    runtime = _loaded(_write(tmp_path, "lin", linear_model))
    with pytest.raises(InvalidInput) as info:
        runtime.handle(b"1,2", "text/csv", None, Context(""))
    assert info.value.status_code == 400
    assert info.value.message == "Feature count mismatch: the model expects 3 features, row 1 has 2"
    with pytest.raises(InvalidInput) as info:
        runtime.handle(_npy(np.zeros((1, 1, 3))), "application/x-npy", None, Context(""))
    assert info.value.message == (
        "Shape mismatch for input 'X': the model expects 2-D [N, 3], the request has [1, 1, 3]"
    )


def test_image_like_input_takes_flat_rows(tmp_path: Path) -> None:
    nodes = [helper.make_node("ReduceSum", ["img"], ["s"], keepdims=0)]
    inputs = [_value("img", TensorProto.FLOAT, ["N", 1, 2, 2])]
    model = _model(nodes, inputs, [_value("s", TensorProto.FLOAT, [])])
    runtime = _loaded(_write(tmp_path, "img", model))
    assert _call(runtime, b"1,2,3,4\n1,1,1,1", "text/csv") == 14.0
    one = np.arange(4, dtype=np.float32).reshape(1, 2, 2)  # no batch axis
    assert _call(runtime, _npy(one), "application/x-npy") == 6.0
    with pytest.raises(InvalidInput) as info:
        runtime.handle(b"1,2,3", "text/csv", None, Context(""))
    assert "the model expects 4-D [N, 1, 2, 2], the request has [1, 3]" in info.value.message


def test_several_inputs_take_named_json(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("Cast", ["b"], ["bf"], to=TensorProto.FLOAT),
        helper.make_node("Concat", ["a", "bf"], ["ab"], axis=1),
        helper.make_node("MatMul", ["ab", "W"], ["y"]),
    ]
    inputs = [_value("a", TensorProto.FLOAT, ["N", 2]), _value("b", TensorProto.INT64, ["N", 1])]
    model = _model(nodes, inputs, [_value("y", TensorProto.FLOAT, ["N", 1])], (W,), ("W",))
    runtime = _loaded(_write(tmp_path, "two", model))
    named = {"inputs": {"a": [[1, 2], [0, 1]], "b": [[4], [8]]}}
    expected = [[1.5 - 4 + 1], [-2 + 2]]
    assert _call(runtime, json.dumps(named).encode(), "application/json") == expected
    v2 = {
        "inputs": [
            {"name": "a", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 0, 1]},
            {"name": "b", "shape": [2, 1], "datatype": "INT64", "data": [4, 8]},
        ]
    }
    assert _call(runtime, json.dumps(v2).encode(), "application/json") == expected
    one_row = {"inputs": {"a": [1, 2], "b": [4]}}  # rows without a batch axis
    assert _call(runtime, json.dumps(one_row).encode(), "application/json") == expected[:1]

    with pytest.raises(DecodeError) as decode:
        runtime.handle(b"1,2,4", "text/csv", None, Context(""))
    assert decode.value.status_code == 415 and "2 inputs (a tensor(float) [N, 2]" in str(
        decode.value
    )
    with pytest.raises(InvalidInput) as info:
        runtime.handle(
            json.dumps({"inputs": {"a": [1, 2]}}).encode(), "application/json", None, Context("")
        )
    assert "unknown none, missing ['b']" in info.value.message
    with pytest.raises(InvalidInput) as info:
        runtime.handle(b"[[1, 2, 4]]", "application/json", None, Context(""))
    assert "The model has 2 inputs" in info.value.message
    fraction = {"inputs": {"a": [1, 2], "b": [4.5]}}
    with pytest.raises(InvalidInput) as info:
        runtime.handle(json.dumps(fraction).encode(), "application/json", None, Context(""))
    assert info.value.message == "Input 'b' is tensor(int64): every value must be a whole number"
    mismatched = {"inputs": {"a": [[1, 2], [3, 4]], "b": [[4]]}}
    with pytest.raises(PredictionFailed) as failed:
        runtime.handle(json.dumps(mismatched).encode(), "application/json", None, Context(""))
    assert failed.value.status_code == 400 and "Prediction failed" in failed.value.message


def test_string_tensors(tmp_path: Path) -> None:
    nodes = [helper.make_node("Identity", ["s"], ["t"])]
    model = _model(
        nodes, [_value("s", TensorProto.STRING, ["N"])], [_value("t", TensorProto.STRING, ["N"])]
    )
    runtime = _loaded(_write(tmp_path, "str", model))
    assert _call(runtime, b'["a", "b,c"]', "application/json") == ["a", "b,c"]
    out, _ = runtime.handle(b'["a", "b,c"]', "application/json", "text/csv", Context(""))
    assert out == b'a\n"b,c"'
    array = _call(runtime, b'["a"]', "application/json", "application/x-npy")
    assert array.tolist() == ["a"]


def test_sequence_input_loads_but_needs_a_script(tmp_path: Path) -> None:
    zero = helper.make_tensor("zero", TensorProto.INT64, [], [0])
    nodes = [
        helper.make_node("Constant", [], ["i"], value=zero),
        helper.make_node("SequenceAt", ["seq", "i"], ["t"]),
    ]
    seq = helper.make_tensor_sequence_value_info("seq", TensorProto.FLOAT, ["N"])
    model = _model(nodes, [seq], [_value("t", TensorProto.FLOAT, ["N"])])
    runtime = _loaded(_write(tmp_path, "seq", model))
    with pytest.raises(InvalidInput) as info:
        runtime.handle(b"[1, 2]", "application/json", None, Context(""))
    assert info.value.message == (
        "Input 'seq' has type seq(tensor(float)), which the onnx runtime cannot build from "
        "a request: add code/inference.py with a predict_fn"
    )


def test_request_errors(tmp_path: Path, linear_model: Any) -> None:
    runtime = _loaded(_write(tmp_path, "lin", linear_model))
    ctx = Context("")
    with pytest.raises(InvalidInput) as empty:
        runtime.handle(b"", "text/csv", None, ctx)
    assert empty.value.status_code == 400
    with pytest.raises(UnsupportedContentType):
        runtime.handle(b"1,2,3", "image/png", None, ctx)
    with pytest.raises(UnsupportedAccept):
        runtime.handle(b"1,2,3", "text/csv", "image/png", ctx)
    with pytest.raises(DecodeError):
        runtime.handle(b"[1, 2", "application/json", None, ctx)
    with pytest.raises(DecodeError):
        runtime.handle(b'[["a", "b", "c"]]', "application/json", None, ctx)


def test_detection_threads_and_registry(tmp_path: Path, linear_model: Any, xgb_dir: Path) -> None:
    model_dir = _write(tmp_path, "lin", linear_model, file="regressor.onnx")
    assert ONNXRuntime.detect(model_dir)
    assert not ONNXRuntime.detect(xgb_dir)
    assert type(select_runtime("auto", model_dir)) is ONNXRuntime
    runtime = _loaded(model_dir, nthread=2)
    assert runtime.model.get_session_options().intra_op_num_threads == 2
    assert runtime.model.get_session_options().inter_op_num_threads == 1
    assert [(s.name, s.type_name, s.shape) for s in runtime.inputs] == [
        ("X", "tensor(float)", (None, 3))
    ]


def test_load_errors_are_actionable(tmp_path: Path, linear_model: Any) -> None:
    (tmp_path / "notes.md").write_text("x")
    with pytest.raises(ModelLoadError) as info:
        _loaded(tmp_path)
    assert info.value.message == (
        f"No model file found in {tmp_path}: expected 'model.onnx' or one *.onnx file for the "
        "onnx runtime; files present: notes.md"
    )
    (tmp_path / "model.onnx").write_bytes(b"definitely not a graph")
    with pytest.raises(ModelLoadError) as info:
        _loaded(tmp_path)
    assert info.value.message.startswith(
        f"model.onnx is not an ONNX model onnxruntime {ort.__version__} can load (INVALID_PROTOBUF"
    )
    (tmp_path / "model.onnx").unlink()
    for name in ("a.onnx", "b.onnx"):
        (tmp_path / name).write_bytes(linear_model.SerializeToString())
    with pytest.raises(ModelLoadError) as info:
        _loaded(tmp_path)
    assert info.value.message == (
        f"Several ONNX graphs in {tmp_path} (a.onnx, b.onnx): name the one to serve 'model.onnx'"
    )
    with pytest.raises(ModelLoadError) as info:
        _loaded(tmp_path / "missing")
    assert "does not exist" in info.value.message


def test_script_mode_default_predict_uses_the_runtime(tmp_path: Path, linear_model: Any) -> None:
    model_dir = _write(tmp_path, "lin", linear_model)
    (model_dir / "code").mkdir()
    (model_dir / "code" / "inference.py").write_text(
        "import numpy as np\n\n"
        "def input_fn(body, content_type):\n"
        "    return np.array([float(v) for v in body.split()])\n"
    )
    runtime = select_runtime("onnx", model_dir)
    runtime.load(model_dir)
    body, _ = runtime.handle(b"1 2 3", "text/plain", "application/json", Context(str(model_dir)))
    assert json.loads(body) == [[-1.25]]
