"""Helpers shared by the framework tests (a plain module: conftest is not importable)."""

from __future__ import annotations

import numpy as np

N_FEATURES = 5


def make_data(n_rows: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic binary task: label depends on three of five features."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, N_FEATURES)).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] - X[:, 2] > 0).astype(np.int64)
    return X, y


def csv_body(X: np.ndarray) -> bytes:
    """Rows as CSV with round-trip float formatting."""
    return "\n".join(",".join(repr(float(v)) for v in row) for row in X).encode()
