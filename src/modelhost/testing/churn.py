"""The house example data set: synthetic telecom churn, shaped like SageMaker's XGBoost example.

The raw columns are those of the classic churn table used by the SageMaker "customer churn
with XGBoost" notebook; the feature encoding is the notebook's as well: the four charge
columns are dropped (each is a fixed multiple of its minutes column), `Area Code` is treated
as a category, and `pd.get_dummies` order is reproduced without pandas:

1. the 11 numeric columns, in table order (`NUMERIC_COLUMNS`);
2. `State_<code>` for the 51 codes in sorted order;
3. `Area Code_408`, `Area Code_415`, `Area Code_510`;
4. `Int'l Plan_no`, `Int'l Plan_yes`, `VMail Plan_no`, `VMail Plan_yes`;

69 features in all (`FEATURE_NAMES`). The label is `Churn? == "True."`.

Everything is generated from a seed with numpy, so the same call returns the same bytes on
every machine and nothing is downloaded. The churn signal is learnable (day minutes, four or
more customer-service calls, the international plan, no voicemail plan, a handful of states)
so a 100-tree model clearly beats chance.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import xgboost

# fmt: off
STATES: tuple[str, ...] = (
    "AK", "AL", "AR", "AZ", "CA", "CO", "CT", "DC", "DE", "FL", "GA", "HI", "IA",
    "ID", "IL", "IN", "KS", "KY", "LA", "MA", "MD", "ME", "MI", "MN", "MO", "MS",
    "MT", "NC", "ND", "NE", "NH", "NJ", "NM", "NV", "NY", "OH", "OK", "OR", "PA",
    "RI", "SC", "SD", "TN", "TX", "UT", "VA", "VT", "WA", "WI", "WV", "WY",
)
# fmt: on
"""The 50 US states and DC, sorted (the order of the `State_*` one-hot columns)."""

AREA_CODES: tuple[int, ...] = (408, 415, 510)

RAW_COLUMNS: tuple[str, ...] = (
    "State",
    "Account Length",
    "Area Code",
    "Int'l Plan",
    "VMail Plan",
    "VMail Message",
    "Day Mins",
    "Day Calls",
    "Day Charge",
    "Eve Mins",
    "Eve Calls",
    "Eve Charge",
    "Night Mins",
    "Night Calls",
    "Night Charge",
    "Intl Mins",
    "Intl Calls",
    "Intl Charge",
    "CustServ Calls",
    "Churn?",
)
"""Raw table columns, in order."""

NUMERIC_COLUMNS: tuple[str, ...] = (
    "Account Length",
    "VMail Message",
    "Day Mins",
    "Day Calls",
    "Eve Mins",
    "Eve Calls",
    "Night Mins",
    "Night Calls",
    "Intl Mins",
    "Intl Calls",
    "CustServ Calls",
)
"""The numeric columns kept as features (the charge columns are dropped: collinear)."""

FEATURE_NAMES: tuple[str, ...] = (
    *NUMERIC_COLUMNS,
    *(f"State_{s}" for s in STATES),
    *(f"Area Code_{a}" for a in AREA_CODES),
    "Int'l Plan_no",
    "Int'l Plan_yes",
    "VMail Plan_no",
    "VMail Plan_yes",
)
"""The 69 model features, in column order of `ChurnData.X`."""

N_FEATURES = len(FEATURE_NAMES)

# States that churn more, as in the public table (where NJ, CA, TX, MD, SC, MI lead).
HIGH_CHURN_STATES: frozenset[str] = frozenset({"NJ", "CA", "TX", "MD", "SC", "MI", "MS", "WA"})

# Per-minute tariffs of the public table: charge = minutes × rate.
_RATES = {"Day": 0.17, "Eve": 0.085, "Night": 0.045, "Intl": 0.27}

# Training parameters of the SageMaker churn notebook.
XGBOOST_PARAMS: dict[str, Any] = {
    "objective": "binary:logistic",
    "max_depth": 5,
    "eta": 0.2,
    "gamma": 4,
    "min_child_weight": 6,
    "subsample": 0.8,
    "tree_method": "hist",
}

ARTIFACT_MEMBER = "xgboost-model"
"""The file name SageMaker's XGBoost container looks for inside `model.tar.gz`."""


@dataclass(frozen=True)
class ChurnData:
    """A generated churn table: raw columns plus the encoded feature matrix.

    `raw` maps each name of `RAW_COLUMNS` to a column array of length `n` (strings for
    `State`, `Int'l Plan`, `VMail Plan` and `Churn?`; ints or floats otherwise). `X` is
    float32 with shape `(n, 69)` in `FEATURE_NAMES` order; `y` is float32 0/1 (1 = churn).
    """

    raw: dict[str, np.ndarray]
    X: npt.NDArray[np.float32]
    y: npt.NDArray[np.float32]
    feature_names: tuple[str, ...] = FEATURE_NAMES

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def rows(self) -> list[dict[str, Any]]:
        """The raw table as a list of dicts (one per customer), with plain Python values."""
        columns = {name: self.raw[name].tolist() for name in RAW_COLUMNS}
        return [{name: columns[name][i] for name in RAW_COLUMNS} for i in range(len(self))]

    def take(self, index: npt.ArrayLike) -> ChurnData:
        """The rows at `index` (an integer array or a slice-like index), as a new ChurnData."""
        idx = np.asarray(index)
        return ChurnData(
            raw={k: v[idx] for k, v in self.raw.items()},
            X=self.X[idx],
            y=self.y[idx],
            feature_names=self.feature_names,
        )

    def split(self, test_fraction: float = 0.2, seed: int = 0) -> tuple[ChurnData, ChurnData]:
        """A seeded shuffle split into (train, test); the test part has `test_fraction` rows."""
        if not 0.0 < test_fraction < 1.0:
            raise ValueError("test_fraction must be between 0 and 1 (exclusive)")
        order = np.random.default_rng(seed).permutation(len(self))
        n_test = max(1, round(len(self) * test_fraction))
        return self.take(np.sort(order[n_test:])), self.take(np.sort(order[:n_test]))


def make_churn(n_rows: int = 5000, seed: int = 0) -> ChurnData:
    """Generate `n_rows` synthetic customers from `seed` (same arguments → identical data).

    The churn rate is about 14–16%, as in the public table.
    """
    if n_rows < 1:
        raise ValueError("n_rows must be at least 1")
    rng = np.random.default_rng(seed)
    n = n_rows

    state = rng.choice(np.array(STATES), size=n)
    account_length = np.clip(rng.normal(101.0, 40.0, n).round(), 1, 243).astype(np.int64)
    area_code = rng.choice(np.array(AREA_CODES), size=n, p=[0.25, 0.5, 0.25])
    intl_plan = rng.random(n) < 0.097
    vmail_plan = rng.random(n) < 0.277
    vmail_message = np.where(
        vmail_plan, np.clip(rng.normal(29.0, 7.5, n).round(), 4, 51), 0
    ).astype(np.int64)

    def minutes(mean: float, sd: float, hi: float) -> np.ndarray:
        return np.clip(rng.normal(mean, sd, n), 0.0, hi).round(1)

    def calls(mean: float, sd: float) -> np.ndarray:
        return np.clip(rng.normal(mean, sd, n).round(), 0, 2 * mean).astype(np.int64)

    day_mins, day_calls = minutes(179.8, 54.5, 350.8), calls(100.0, 20.0)
    eve_mins, eve_calls = minutes(201.0, 50.7, 363.7), calls(100.0, 20.0)
    night_mins, night_calls = minutes(200.9, 50.6, 395.0), calls(100.0, 19.6)
    intl_mins = minutes(10.2, 2.8, 20.0)
    intl_calls = rng.poisson(4.5, n).astype(np.int64)
    custserv_calls = np.minimum(rng.poisson(1.56, n), 9).astype(np.int64)

    logit = _churn_logit(
        state, day_mins, eve_mins, custserv_calls, intl_plan, intl_calls, vmail_plan, intl_mins
    )
    churn = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))

    raw: dict[str, np.ndarray] = {
        "State": state,
        "Account Length": account_length,
        "Area Code": area_code.astype(np.int64),
        "Int'l Plan": np.where(intl_plan, "yes", "no"),
        "VMail Plan": np.where(vmail_plan, "yes", "no"),
        "VMail Message": vmail_message,
        "Day Mins": day_mins,
        "Day Calls": day_calls,
        "Day Charge": (day_mins * _RATES["Day"]).round(2),
        "Eve Mins": eve_mins,
        "Eve Calls": eve_calls,
        "Eve Charge": (eve_mins * _RATES["Eve"]).round(2),
        "Night Mins": night_mins,
        "Night Calls": night_calls,
        "Night Charge": (night_mins * _RATES["Night"]).round(2),
        "Intl Mins": intl_mins,
        "Intl Calls": intl_calls,
        "Intl Charge": (intl_mins * _RATES["Intl"]).round(2),
        "CustServ Calls": custserv_calls,
        "Churn?": np.where(churn, "True.", "False."),
    }
    return ChurnData(raw=raw, X=encode_features(raw), y=churn.astype(np.float32))


def _churn_logit(
    state: np.ndarray,
    day_mins: np.ndarray,
    eve_mins: np.ndarray,
    custserv_calls: np.ndarray,
    intl_plan: np.ndarray,
    intl_calls: np.ndarray,
    vmail_plan: np.ndarray,
    intl_mins: np.ndarray,
) -> np.ndarray:
    """The churn signal: a logistic model with thresholds, so trees find it and a linear
    scorer does less well."""
    high_state = np.isin(state, np.array(sorted(HIGH_CHURN_STATES)))
    logit: np.ndarray = (
        -3.4
        + 0.012 * (day_mins - 180.0)
        + 2.6 * (day_mins > 245.0)
        + 0.006 * (eve_mins - 200.0)
        + 2.8 * (custserv_calls >= 4)
        + 1.9 * intl_plan
        + 1.4 * (intl_plan & (intl_calls < 3))
        - 1.1 * vmail_plan
        + 0.8 * high_state
        + 0.08 * (intl_mins - 10.0)
    )
    return logit


def encode_features(raw: dict[str, np.ndarray]) -> npt.NDArray[np.float32]:
    """Encode raw columns into the `(n, 69)` float32 matrix in `FEATURE_NAMES` order."""
    n = len(raw["State"])
    X = np.zeros((n, N_FEATURES), dtype=np.float32)
    for j, name in enumerate(NUMERIC_COLUMNS):
        X[:, j] = raw[name]
    col = len(NUMERIC_COLUMNS)
    for values, levels in (
        (raw["State"], STATES),
        (raw["Area Code"], AREA_CODES),
        (raw["Int'l Plan"], ("no", "yes")),
        (raw["VMail Plan"], ("no", "yes")),
    ):
        for level in levels:
            X[:, col] = values == level
            col += 1
    assert col == N_FEATURES
    return X


def train_xgboost(
    data: ChurnData, num_round: int = 100, seed: int = 0, nthread: int = 1
) -> xgboost.Booster:
    """Train the notebook's binary:logistic model (depth 5, eta 0.2) on all rows of `data`.

    The booster carries no feature names, as a model trained from SageMaker's headerless CSV
    doesn't, so it predicts on plain arrays. With a fixed `seed` and `nthread` the result is
    reproducible.
    """
    import xgboost

    dtrain = xgboost.DMatrix(data.X, label=data.y, nthread=nthread)
    params = {**XGBOOST_PARAMS, "seed": seed, "nthread": nthread}
    return xgboost.train(params, dtrain, num_boost_round=num_round)


def xgboost_model_bytes(booster: xgboost.Booster) -> bytes:
    """The booster serialised as SageMaker's `xgboost-model` file (UBJSON)."""
    return bytes(booster.save_raw("ubj"))


def write_xgboost_artifact(booster: xgboost.Booster, directory: str | Path) -> Path:
    """Write `<directory>/model.tar.gz` holding `xgboost-model`, as SageMaker's XGBoost expects.

    The archive is reproducible (fixed mtimes and owners), so the same booster always gives
    the same bytes. Returns the archive's path.
    """
    return write_artifact(ARTIFACT_MEMBER, xgboost_model_bytes(booster), directory)


def write_lightgbm_artifact(booster: Any, directory: str | Path) -> Path:
    """Write `<directory>/model.tar.gz` holding LightGBM's `model.txt` (the booster's text
    model, as `booster.save_model` writes it), reproducibly. Returns the archive's path."""
    return write_artifact("model.txt", booster.model_to_string().encode(), directory)


def write_artifact(member: str, payload: bytes, directory: str | Path) -> Path:
    """Write `<directory>/model.tar.gz` holding one file `member`; reproducible bytes."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    info = tarfile.TarInfo(member)
    info.size = len(payload)
    info.mode = 0o644
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        tar.addfile(info, io.BytesIO(payload))
    path = directory / "model.tar.gz"
    tmp = path.with_name(f".{path.name}.{time.monotonic_ns()}.tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(path)
    return path


def read_xgboost_artifact(path: str | Path) -> xgboost.Booster:
    """Load the booster from a `model.tar.gz` written by `write_xgboost_artifact`.

    Loads from bytes, which spares XGBoost 3 its "Unknown file format" guess for the
    extension-less `xgboost-model`.
    """
    import xgboost

    with tarfile.open(path, mode="r:gz") as tar:
        member = tar.extractfile(ARTIFACT_MEMBER)
        if member is None:
            raise ValueError(f"{path}: {ARTIFACT_MEMBER} is not a regular file")
        payload = member.read()
    booster = xgboost.Booster()
    booster.load_model(bytearray(payload))
    return booster


def format_float32(value: float) -> str:
    """The shortest text that parses back (directly or via float64) to the same float32."""
    v = np.float32(value)
    if not np.isfinite(v):
        return repr(float(v))
    if float(v).is_integer() and abs(v) < 2**24:
        return str(int(v))
    text = str(v)  # numpy's shortest round-trip repr for float32
    if np.float32(float(text)) != v:  # never seen; keep the exact float64 repr then
        text = repr(float(v))
    return text


def csv_rows(X: npt.ArrayLike) -> list[str]:
    """One headerless CSV line per row of `X` (no label column), as SageMaker's XGBoost takes.

    Values are written so that the server parses exactly the float32 values in `X`.
    """
    matrix = np.asarray(X, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix.reshape(1, -1)
    if matrix.ndim != 2:
        raise ValueError("X must be one- or two-dimensional")
    return [",".join(format_float32(v) for v in row) for row in matrix.tolist()]


def csv_body(X: npt.ArrayLike) -> str:
    """A `text/csv` request body with one line per row of `X`."""
    return "\n".join(csv_rows(X))
