"""Script mode: the inference toolkit's handler functions, defaults and errors."""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelhost.errors import (
    InferenceError,
    ModelLoadError,
    UnsupportedAccept,
    UnsupportedContentType,
)
from modelhost.frameworks.base import Context, RuntimeOptions
from modelhost.frameworks.registry import select_runtime
from modelhost.frameworks.script import ScriptRuntime, wants_context
from tests.frameworks.fw_support import csv_body


def _script(model_dir: Path, source: str, name: str = "inference.py") -> Path:
    code = model_dir / "code"
    code.mkdir(parents=True, exist_ok=True)
    path = code / name
    path.write_text(textwrap.dedent(source))
    return path


def _load(model_dir: Path, runtime: str = "auto", **options: Any) -> ScriptRuntime:
    selected = select_runtime(runtime, model_dir, RuntimeOptions(**options))
    assert isinstance(selected, ScriptRuntime)
    selected.load(model_dir)
    return selected


def test_model_fn_only_uses_toolkit_defaults(tmp_path: Path, booster: Any, data: Any) -> None:
    X, _ = data
    (tmp_path / "booster.ubj").write_bytes(bytes(booster.save_raw("ubj")))
    _script(
        tmp_path,
        """
        import xgboost as xgb

        def model_fn(model_dir):
            b = xgb.Booster()
            b.load_model(model_dir + "/booster.ubj")
            return b
        """,
    )
    runtime = _load(tmp_path, "xgboost")
    body, media = runtime.handle(csv_body(X[:3]), "text/csv", None, Context(str(tmp_path)))
    assert media == "application/json"  # the toolkit's default Accept
    np.testing.assert_allclose(json.loads(body), booster.inplace_predict(X[:3]), atol=1e-6)


def test_no_model_fn_falls_back_to_framework_loader(xgb_dir: Path, booster: Any, data: Any) -> None:
    X, _ = data
    _script(
        xgb_dir,
        """
        def output_fn(prediction, accept):
            return ",".join(str(v) for v in prediction.tolist()), "text/plain"
        """,
    )
    runtime = _load(xgb_dir)
    assert runtime.base is not None and runtime.base.name == "xgboost"
    body, media = runtime.handle(csv_body(X[:2]), "text/csv", None, Context(str(xgb_dir)))
    assert media == "text/plain"  # tuple return sets the content type
    np.testing.assert_allclose(
        [float(v) for v in body.split(b",")], booster.inplace_predict(X[:2]), atol=1e-6
    )


def test_all_functions_with_context(tmp_path: Path) -> None:
    _script(
        tmp_path,
        """
        import json

        def model_fn(model_dir, context):
            return {"dir": model_dir, "ctx_dir": context.system_properties["model_dir"]}

        def input_fn(input_data, content_type, context):
            assert isinstance(input_data, str)  # JSON arrives decoded
            return {"data": json.loads(input_data), "ct": content_type}

        def predict_fn(data, model, context):
            return {"sum": sum(data["data"]), "ct": data["ct"], "model": model["dir"]}

        def output_fn(prediction, accept, context):
            context.response_custom_attributes = "echo=" + (context.custom_attributes or "")
            prediction["accept"] = accept
            return json.dumps(prediction)
        """,
    )
    runtime = _load(tmp_path)
    ctx = Context(str(tmp_path), custom_attributes="trace=1")
    body, media = runtime.handle(b"[1, 2, 3]", "application/json; charset=utf-8", "*/*", ctx)
    assert json.loads(body) == {
        "sum": 6,
        "ct": "application/json; charset=utf-8",  # passed as the client sent it
        "model": str(tmp_path),
        "accept": "application/json",  # */* replaced by the default
    }
    assert media == "application/json"
    assert ctx.response_custom_attributes == "echo=trace=1"


def test_bytes_for_binary_types_and_default_accept_env(tmp_path: Path) -> None:
    _script(
        tmp_path,
        """
        def model_fn(model_dir):
            return None

        def transform_fn(model, input_data, content_type, accept):
            return type(input_data).__name__ + " " + accept
        """,
    )
    runtime = _load(tmp_path, default_accept="text/csv")
    ctx = Context(str(tmp_path))
    assert runtime.handle(b"\x93NUMPY", "application/x-npy", None, ctx) == (
        b"bytes text/csv",
        "text/csv",
    )
    assert runtime.handle(b"1,2", "text/csv", "text/csv", ctx)[0] == b"str text/csv"


def test_transform_fn_with_input_fn_is_a_load_error(tmp_path: Path) -> None:
    _script(
        tmp_path,
        """
        def model_fn(model_dir): return 1
        def input_fn(data, content_type): return data
        def transform_fn(model, data, content_type, accept): return data
        """,
    )
    with pytest.raises(ModelLoadError) as info:
        _load(tmp_path)
    assert info.value.message == (
        "code/inference.py defines transform_fn together with input_fn: define either "
        "transform_fn alone or input_fn/predict_fn/output_fn"
    )


def test_import_error_names_the_line(tmp_path: Path) -> None:
    _script(tmp_path, "import os\n\nx = undefined_name\n")
    with pytest.raises(ModelLoadError) as info:
        _load(tmp_path)
    assert info.value.message == (
        "code/inference.py failed to import: NameError: name 'undefined_name' is not defined "
        "(line 3)"
    )


def test_syntax_error_and_model_fn_failure(tmp_path: Path) -> None:
    _script(tmp_path, "def model_fn(:\n")
    with pytest.raises(ModelLoadError) as info:
        _load(tmp_path)
    assert "failed to import: SyntaxError" in info.value.message
    _script(tmp_path, "def model_fn(model_dir):\n    raise ValueError('no weights')\n")
    with pytest.raises(ModelLoadError) as info:
        _load(tmp_path)
    assert info.value.message == (
        "model_fn in code/inference.py failed: ValueError: no weights (line 2)"
    )


def test_missing_model_fn_without_framework(tmp_path: Path) -> None:
    _script(tmp_path, "def predict_fn(data, model): return data\n")
    with pytest.raises(ModelLoadError) as info:
        _load(tmp_path)
    assert "defines no model_fn" in info.value.message
    assert "files present: code/" in info.value.message


def test_sagemaker_program_and_sibling_imports(tmp_path: Path) -> None:
    _script(tmp_path, "FACTOR = 10\n", name="helpers.py")
    _script(
        tmp_path,
        """
        import helpers

        class Model:
            def predict(self, data):
                return data * helpers.FACTOR

        def model_fn(model_dir):
            return Model()
        """,
        name="serve.py",
    )
    runtime = _load(tmp_path, program="serve")
    body, _ = runtime.handle(b"1,2", "text/csv", "text/csv", Context(str(tmp_path)))
    assert body == b"10.0,20.0"  # default input_fn (float CSV) + model.predict + CSV output
    with pytest.raises(ModelLoadError) as info:
        select_runtime("auto", tmp_path, RuntimeOptions(program="nope"))
    assert "SAGEMAKER_PROGRAM is nope.py" in info.value.message


def test_default_handler_errors(tmp_path: Path) -> None:
    _script(tmp_path, "def model_fn(model_dir):\n    return object()\n")
    runtime = _load(tmp_path)
    ctx = Context(str(tmp_path))
    with pytest.raises(UnsupportedContentType):
        runtime.handle(b"x", "image/png", None, ctx)
    with pytest.raises(InferenceError) as info:
        runtime.handle(b"[1]", "application/json", None, ctx)
    assert "define predict_fn" in info.value.message


def test_default_output_accept_and_npy(tmp_path: Path) -> None:
    _script(
        tmp_path,
        """
        def model_fn(model_dir):
            return None

        def predict_fn(data, model):
            return data * 2
        """,
    )
    runtime = _load(tmp_path)
    ctx = Context(str(tmp_path))
    buffer = io.BytesIO()
    np.save(buffer, np.array([[1.0, 2.0]]))
    body, media = runtime.handle(buffer.getvalue(), "application/x-npy", "application/x-npy", ctx)
    assert media == "application/x-npy"
    np.testing.assert_array_equal(np.load(io.BytesIO(body)), [[2.0, 4.0]])
    with pytest.raises(UnsupportedAccept):
        runtime.handle(b"[1]", "application/json", "image/png", ctx)


def test_user_exception_propagates_with_status(tmp_path: Path) -> None:
    _script(
        tmp_path,
        """
        class ToolkitError(Exception):
            def __init__(self, status_code, message, phrase=""):
                super().__init__(message)
                self.status_code = status_code
                self.message = message

        def model_fn(model_dir):
            return None

        def transform_fn(model, data, content_type, accept):
            raise ToolkitError(422, "bad customer id")
        """,
    )
    runtime = _load(tmp_path)
    with pytest.raises(Exception) as info:
        runtime.handle(b"[1]", "application/json", None, Context(str(tmp_path)))
    assert getattr(info.value, "status_code", None) == 422


def test_bad_return_type(tmp_path: Path) -> None:
    _script(
        tmp_path,
        "def model_fn(d): return None\ndef transform_fn(m, d, c, a): return {'a': 1}\n",
    )
    runtime = _load(tmp_path)
    with pytest.raises(InferenceError) as info:
        runtime.handle(b"[1]", "application/json", None, Context(str(tmp_path)))
    assert "transform_fn in code/inference.py returned dict" in info.value.message


def test_wants_context_counts_parameters() -> None:
    def two(a: Any, b: Any) -> None: ...
    def three(a: Any, b: Any, c: Any) -> None: ...
    def star(*args: Any) -> None: ...
    def kw(a: Any, b: Any, *, c: Any = None) -> None: ...

    assert not wants_context(two, 2)
    assert wants_context(three, 2)
    assert wants_context(star, 2)
    assert not wants_context(kw, 2)
