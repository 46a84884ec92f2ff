"""The churn example data set: determinism, shape, learnability, artifact and CSV round trips."""

from __future__ import annotations

import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import xgboost

from modelhost.testing import churn


@pytest.fixture(scope="module")
def data() -> churn.ChurnData:
    return churn.make_churn(5000, seed=0)


@pytest.fixture(scope="module")
def split(data: churn.ChurnData) -> tuple[churn.ChurnData, churn.ChurnData]:
    return data.split(test_fraction=0.3, seed=0)


@pytest.fixture(scope="module")
def booster(split: tuple[churn.ChurnData, churn.ChurnData]) -> xgboost.Booster:
    return churn.train_xgboost(split[0], num_round=100, seed=0, nthread=1)


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    ranks = np.empty(len(score))
    ranks[np.argsort(score, kind="stable")] = np.arange(1, len(score) + 1)
    positives = float(y.sum())
    negatives = len(y) - positives
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def test_same_seed_gives_identical_data(data: churn.ChurnData) -> None:
    again = churn.make_churn(5000, seed=0)
    assert np.array_equal(data.X, again.X)
    assert np.array_equal(data.y, again.y)
    assert data.rows()[:20] == again.rows()[:20]
    assert not np.array_equal(data.X, churn.make_churn(5000, seed=1).X)


def test_shape_and_feature_order(data: churn.ChurnData) -> None:
    assert data.X.shape == (5000, 69)
    assert data.X.dtype == np.float32
    assert len(data.feature_names) == 69 == len(set(data.feature_names))
    assert data.feature_names[:3] == ("Account Length", "VMail Message", "Day Mins")
    assert data.feature_names[11] == "State_AK"
    assert data.feature_names[-4:] == (
        "Int'l Plan_no",
        "Int'l Plan_yes",
        "VMail Plan_no",
        "VMail Plan_yes",
    )
    assert set(data.rows()[0]) == set(churn.RAW_COLUMNS)
    # Each one-hot group has exactly one 1 per row.
    for start, stop in ((11, 62), (62, 65), (65, 67), (67, 69)):
        assert np.all(data.X[:, start:stop].sum(axis=1) == 1)


def test_all_51_states_and_three_area_codes(data: churn.ChurnData) -> None:
    assert len(churn.STATES) == 51
    assert "DC" in churn.STATES
    assert set(data.raw["State"].tolist()) == set(churn.STATES)
    assert set(data.raw["Area Code"].tolist()) == {408, 415, 510}


def test_raw_columns_are_consistent(data: churn.ChurnData) -> None:
    raw = data.raw
    assert np.allclose(raw["Day Charge"], raw["Day Mins"] * 0.17, atol=0.006)
    assert set(raw["Churn?"].tolist()) == {"True.", "False."}
    assert np.array_equal(raw["Churn?"] == "True.", data.y == 1)
    assert np.all(raw["VMail Message"][raw["VMail Plan"] == "no"] == 0)


def test_churn_rate_is_balanced_ish(data: churn.ChurnData) -> None:
    assert 0.10 <= float(data.y.mean()) <= 0.30


def test_model_beats_trivial_baseline(
    split: tuple[churn.ChurnData, churn.ChurnData], booster: xgboost.Booster
) -> None:
    _, test = split
    proba = booster.inplace_predict(test.X)
    accuracy = float(((proba > 0.5) == (test.y == 1)).mean())
    majority = float(max(test.y.mean(), 1 - test.y.mean()))
    assert _auc(test.y, proba) > 0.8
    assert accuracy > majority + 0.02


def test_training_is_reproducible(split: tuple[churn.ChurnData, churn.ChurnData]) -> None:
    a = churn.train_xgboost(split[0], num_round=10, seed=3)
    b = churn.train_xgboost(split[0], num_round=10, seed=3)
    assert churn.xgboost_model_bytes(a) == churn.xgboost_model_bytes(b)


def test_artifact_round_trip(
    tmp_path: Path, split: tuple[churn.ChurnData, churn.ChurnData], booster: xgboost.Booster
) -> None:
    path = churn.write_xgboost_artifact(booster, tmp_path / "out")
    assert path == tmp_path / "out" / "model.tar.gz"
    with tarfile.open(path, "r:gz") as tar:
        assert tar.getnames() == ["xgboost-model"]
        member = tar.extractfile("xgboost-model")
        assert member is not None
        payload = member.read()
    loaded = xgboost.Booster()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded.load_model(bytearray(payload))
    _, test = split
    expected = booster.inplace_predict(test.X)
    assert np.array_equal(loaded.inplace_predict(test.X), expected)
    assert np.array_equal(churn.read_xgboost_artifact(path).inplace_predict(test.X), expected)
    # Same booster → same archive bytes.
    again = churn.write_xgboost_artifact(booster, tmp_path / "again")
    assert again.read_bytes() == path.read_bytes()


def test_csv_rows_parse_back_to_identical_float32(data: churn.ChurnData) -> None:
    rows = churn.csv_rows(data.X[:500])
    assert len(rows) == 500
    assert all("\n" not in r and r.count(",") == 68 for r in rows)
    via_float64 = np.array([[float(v) for v in r.split(",")] for r in rows]).astype(np.float32)
    direct = np.array([r.split(",") for r in rows]).astype(np.float32)
    assert np.array_equal(via_float64, data.X[:500])
    assert np.array_equal(direct, data.X[:500])
    assert churn.csv_body(data.X[:2]) == "\n".join(rows[:2])


def test_csv_rows_are_exact_for_awkward_floats() -> None:
    values = np.array(
        [[0.1, 1 / 3, 1e-8, -2.5, 16777217.0, 3.4e38, 123456.789, 0.0]], dtype=np.float32
    )
    (row,) = churn.csv_rows(values)
    assert np.array_equal(np.array(row.split(","), dtype=np.float64).astype(np.float32), values[0])
    rng = np.random.default_rng(0)
    noise = (rng.standard_normal((200, 69)) * 10.0 ** rng.integers(-6, 6, (200, 69))).astype(
        np.float32
    )
    parsed = np.array([r.split(",") for r in churn.csv_rows(noise)], dtype=np.float64)
    assert np.array_equal(parsed.astype(np.float32), noise)


@pytest.mark.integration
def test_demo_serves_the_churn_model_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`modelhost demo`: a real server, boto3 deploy, served == in-process, then the same
    again once the compiled tier (the default, which the suite otherwise turns off) has
    moved the model to native code, and a clean stop."""
    import io

    from modelhost.demo import run_demo

    monkeypatch.setenv("MODELHOST_COMPILE_TREE_MODELS", "auto")
    out = io.StringIO()
    code = run_demo(home=tmp_path / "home", rows=3, out=out)
    text = out.getvalue()
    assert code == 0, text
    assert text.count("all served probabilities match") == 2, text
    assert "the model now predicts with its compiled form" in text
