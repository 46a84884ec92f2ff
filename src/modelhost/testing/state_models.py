"""Per-state churn models for multi-model endpoints: one small XGBoost model per State.

The seeds' multi-model example: instead of one endpoint per state, 51 artifacts
(`AK.tar.gz` … `WY.tar.gz`) under one prefix, served by one multi-model endpoint and
chosen per request with `TargetModel="CA.tar.gz"`. Each model is trained on the
customers of its state only (and a seed that depends on the state), so every model
answers differently and a request routed to the wrong model is caught.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from modelhost.testing.churn import STATES, ChurnData, train_xgboost, write_xgboost_artifact


@dataclass
class StateModels:
    """The artifacts under `prefix` (`<prefix>/<STATE>.tar.gz`) and their boosters."""

    prefix: Path
    boosters: dict[str, Any]
    rows: dict[str, npt.NDArray[np.float32]]  # a few of each state's customers

    def target(self, state: str) -> str:
        return f"{state}.tar.gz"

    def expected(self, state: str, X: npt.ArrayLike) -> npt.NDArray[Any]:
        """The in-process prediction of `state`'s model."""
        return np.asarray(self.boosters[state].inplace_predict(np.asarray(X, dtype=np.float32)))


def write_state_models(
    data: ChurnData,
    prefix: str | Path,
    *,
    states: tuple[str, ...] = STATES,
    num_round: int = 10,
    rows_per_state: int = 3,
) -> StateModels:
    """Train one model per state on that state's rows; write `<prefix>/<STATE>.tar.gz`."""
    prefix = Path(prefix)
    prefix.mkdir(parents=True, exist_ok=True)
    boosters: dict[str, Any] = {}
    rows: dict[str, npt.NDArray[np.float32]] = {}
    for i, state in enumerate(states):
        mine = data.take(np.flatnonzero(data.raw["State"] == state))
        if len(mine) < 2:
            raise ValueError(f"the data has fewer than 2 customers in {state}; generate more")
        booster = train_xgboost(mine, num_round=num_round, seed=i)
        folder = prefix / f".build-{state}"
        archive = write_xgboost_artifact(booster, folder)
        archive.replace(prefix / f"{state}.tar.gz")
        folder.rmdir()
        boosters[state] = booster
        rows[state] = mine.X[:rows_per_state]
    return StateModels(prefix, boosters, rows)
