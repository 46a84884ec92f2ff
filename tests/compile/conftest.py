"""Small tree models of every supported framework, as SageMaker model.tar.gz artifacts."""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

FEATURES = 8
ROWS = 600


@dataclass
class Case:
    """One model: its artifact, framework name for the job, and the native answers."""

    name: str
    framework: str
    artifact: Path
    predict: Any  # rows -> the native runtime's answer

    def expected(self, x: NDArray[Any]) -> NDArray[Any]:
        return np.asarray(self.predict(x))


def tar_members(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


def data(seed: int = 0, missing: bool = True) -> tuple[NDArray[np.float32], NDArray[Any]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(ROWS, FEATURES)).astype(np.float32) * np.float32(10)
    y = (x[:, 0] + x[:, 1] > 0).astype(int) + (x[:, 2] > 5).astype(int)
    if missing:
        x[rng.random(x.shape) < 0.1] = np.nan
    return x, y


def build_case(kind: str, root: Path) -> Case:
    """`kind`: xgb-binary, xgb-reg, xgb-multi, lightgbm, sklearn-gb."""
    import xgboost as xgb

    root.mkdir(parents=True, exist_ok=True)
    x, y = data(missing=kind != "sklearn-gb")
    if kind.startswith("xgb-"):
        params: dict[str, Any] = {
            "xgb-binary": {"objective": "binary:logistic"},
            "xgb-reg": {"objective": "reg:squarederror"},
            "xgb-multi": {"objective": "multi:softprob", "num_class": 3},
        }[kind]
        label = {"xgb-binary": (y > 0).astype(int), "xgb-reg": x[:, 3], "xgb-multi": y}[kind]
        label = np.nan_to_num(label)
        booster = xgb.train(
            {**params, "max_depth": 4, "nthread": 1, "seed": 0},
            xgb.DMatrix(x, label=label),
            num_boost_round=15,
        )
        raw = bytes(booster.save_raw("ubj"))
        art = tar_members(root / "model.tar.gz", {"xgboost-model": raw})
        return Case(kind, "XGBOOST", art, lambda r: booster.inplace_predict(r))
    if kind == "lightgbm":
        import lightgbm as lgb

        params = {"objective": "binary", "verbose": -1, "num_threads": 1, "seed": 0}
        lb = lgb.train(params, lgb.Dataset(x, (y > 0).astype(int)), num_boost_round=15)
        art = tar_members(root / "model.tar.gz", {"model.txt": lb.model_to_string().encode()})
        return Case(kind, "SKLEARN", art, lambda r: lb.predict(r.astype(np.float64)))
    import joblib
    from sklearn.ensemble import GradientBoostingClassifier

    clf = GradientBoostingClassifier(n_estimators=15, max_depth=3, random_state=0).fit(x, y)
    buf = io.BytesIO()
    joblib.dump(clf, buf)
    art = tar_members(root / "model.tar.gz", {"model.joblib": buf.getvalue()})
    return Case(kind, "SKLEARN", art, lambda r: clf.predict(r.astype(np.float64)))


@pytest.fixture(scope="session")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    root = tmp_path_factory.mktemp("compile-cases")
    kinds = ("xgb-binary", "xgb-reg", "xgb-multi", "lightgbm", "sklearn-gb")
    return {k: build_case(k, root / k) for k in kinds}
