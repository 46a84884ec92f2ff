"""The preprocessing step of the churn pipeline: raw customer rows → the 69 features.

A scikit-learn ColumnTransformer one-hot encodes State, Area Code, Int'l Plan and VMail
Plan and passes the numeric columns through (the charge columns are dropped), in the
column order the XGBoost model was trained on. Shared by the inference script (inside
the container), by run.py (to fit it) and by the tests (to run the step by hand).
"""

from __future__ import annotations

import csv
import io

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import OneHotEncoder

from modelhost.testing.churn import AREA_CODES, NUMERIC_COLUMNS, RAW_COLUMNS, STATES

INPUT_COLUMNS = tuple(c for c in RAW_COLUMNS if c != "Churn?")
"""What a client sends: one CSV line per customer, the raw table's columns but the label."""

CATEGORICAL = {
    "State": list(STATES),
    "Area Code": [str(a) for a in AREA_CODES],
    "Int'l Plan": ["no", "yes"],
    "VMail Plan": ["no", "yes"],
}


def build_preprocessor() -> ColumnTransformer:
    index = {name: i for i, name in enumerate(INPUT_COLUMNS)}
    return ColumnTransformer(
        [
            ("numeric", "passthrough", [index[c] for c in NUMERIC_COLUMNS]),
            (
                "onehot",
                OneHotEncoder(categories=list(CATEGORICAL.values()), sparse_output=False),
                [index[c] for c in CATEGORICAL],
            ),
        ],
        remainder="drop",
    )


def parse_csv(text: str) -> np.ndarray:
    """Raw CSV rows → an object array: strings for categories, floats for numbers."""
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    for n, row in enumerate(rows, start=1):
        if len(row) != len(INPUT_COLUMNS):
            raise ValueError(
                f"row {n} has {len(row)} columns; expected {len(INPUT_COLUMNS)}: "
                + ", ".join(INPUT_COLUMNS)
            )
    out = np.empty((len(rows), len(INPUT_COLUMNS)), dtype=object)
    for j, name in enumerate(INPUT_COLUMNS):
        column = [row[j].strip() for row in rows]
        out[:, j] = column if name in CATEGORICAL else [float(v) for v in column]
    return out


def transform(preprocessor: ColumnTransformer, text: str) -> np.ndarray:
    return np.asarray(preprocessor.transform(parse_csv(text)), dtype=np.float64)


def to_csv(features: np.ndarray) -> str:
    return "".join(",".join(repr(float(v)) for v in row) + "\n" for row in features)
