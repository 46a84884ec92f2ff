"""Compiling in-process, and the compiled runtime the instance serves it with."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from modelhost.compile.build import CompileRequest, compile_model
from modelhost.compile.sources import CompileError
from modelhost.frameworks.base import Context
from modelhost.frameworks.compiled import MARKER, CompiledRuntime, read_marker
from modelhost.frameworks.errors import InvalidInput, ModelLoadError
from modelhost.frameworks.registry import select_runtime
from modelhost.testing.churn import csv_body
from tests.compile.conftest import FEATURES, Case, data


def _compile(case: Case, root: Path, shape: list[int] | None = None) -> Path:
    model_dir = root / "in"
    with tarfile.open(case.artifact) as tar:
        tar.extractall(model_dir, filter="data")
    out = root / "out"
    compile_model(CompileRequest(model_dir, case.framework, shape, out, 120))
    return out


@pytest.fixture(scope="module")
def lightgbm_dir(cases: dict[str, Case], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _compile(cases["lightgbm"], tmp_path_factory.mktemp("lgb"), [4, FEATURES])


def test_marker_records_both_targets_and_the_choice(lightgbm_dir: Path) -> None:
    marker = read_marker(lightgbm_dir)
    assert marker["backend"] in ("c", "onnx")
    assert set(marker["targets"]) == {"c", "onnx"}
    assert marker["targets"]["c"]["Exact"] is True
    assert marker["targets"]["c"]["LatencyMicros"] > 0
    assert marker["measured_rows"] == 4
    assert marker["input_shape"] == [4, FEATURES]


def test_the_marker_selects_the_compiled_runtime(lightgbm_dir: Path) -> None:
    assert isinstance(select_runtime("lightgbm", lightgbm_dir), CompiledRuntime)
    assert isinstance(select_runtime("auto", lightgbm_dir), CompiledRuntime)


def test_runtime_answers_as_lightgbm(lightgbm_dir: Path, cases: dict[str, Case]) -> None:
    runtime = CompiledRuntime()
    runtime.load(lightgbm_dir)
    x, _ = data(seed=9)
    x = x[:30]
    body, media = runtime.handle(csv_body(x).encode(), "text/csv", None, Context(""))
    assert media == "text/csv"
    got = np.array([float(v) for v in body.decode().split()])
    np.testing.assert_allclose(got, cases["lightgbm"].expected(x), atol=1e-6, rtol=0)
    rows, _ = runtime.prepare(csv_body(x[:3]).encode(), "text/csv", None)
    assert runtime.batch_rows(rows) == 3  # merged batches as the native runtimes
    with pytest.raises(InvalidInput, match="expects 8 features"):
        runtime.handle(b"1,2,3", "text/csv", None, Context(""))


def test_missing_marker_and_unsupported_models(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=MARKER):
        read_marker(tmp_path)
    (tmp_path / "model.joblib").write_bytes(b"\x80\x04K\x01.")  # pickled int
    with pytest.raises(CompileError, match=r"could not be loaded|tree ensembles"):
        compile_model(CompileRequest(tmp_path, "SKLEARN", None, tmp_path / "out", 60))
    with pytest.raises(CompileError, match="PYTORCH is not supported"):
        compile_model(CompileRequest(tmp_path, "PYTORCH", None, tmp_path / "out", 60))


def test_marker_format_is_checked(lightgbm_dir: Path, tmp_path: Path) -> None:
    marker = json.loads((lightgbm_dir / MARKER).read_text())
    (tmp_path / MARKER).write_text(json.dumps({**marker, "format": 99}))
    with pytest.raises(ModelLoadError, match="format 99"):
        read_marker(tmp_path)
