"""Runtime selection from MH_INSTANCE_RUNTIME and the model directory."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

from modelhost.errors import ModelLoadError
from modelhost.frameworks.registry import select_runtime
from modelhost.frameworks.script import ScriptRuntime


def test_auto_detects_xgboost_and_sklearn(xgb_dir: Path, sklearn_dir: Path) -> None:
    assert select_runtime("auto", xgb_dir).name == "xgboost"
    assert select_runtime("auto", sklearn_dir).name == "sklearn"


def test_auto_detects_pickled_booster(tmp_path: Path, booster: Any) -> None:
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(booster))
    assert select_runtime("auto", tmp_path).name == "xgboost"


def test_auto_detects_xgboost_json_only_by_content(tmp_path: Path, booster: Any) -> None:
    (tmp_path / "config.json").write_text('{"foo": 1}')
    with pytest.raises(ModelLoadError):
        select_runtime("auto", tmp_path)
    booster.save_model(str(tmp_path / "model.json"))
    assert select_runtime("auto", tmp_path).name == "xgboost"


def test_script_wraps_the_framework(sklearn_dir: Path) -> None:
    (sklearn_dir / "code").mkdir()
    (sklearn_dir / "code" / "inference.py").write_text("")
    runtime = select_runtime("sklearn", sklearn_dir)
    assert isinstance(runtime, ScriptRuntime)
    assert runtime.base is not None and runtime.base.name == "sklearn"


def test_nothing_recognisable(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(ModelLoadError) as info:
        select_runtime("auto", tmp_path)
    assert info.value.message.startswith(f"No model file found in {tmp_path}")
    assert info.value.message.endswith("files present: a.txt")


def test_unknown_runtime(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError) as info:
        select_runtime("tensorflow", tmp_path)
    assert "one of auto, xgboost, sklearn" in info.value.message
