"""Fixtures for container tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from instance_support import STATES, train_booster

from modelhost.testing.churn import make_churn
from modelhost.testing.state_models import StateModels, write_state_models


@pytest.fixture(scope="session")
def trained() -> tuple[Any, np.ndarray]:
    """(booster, rows) shared by all container tests."""
    return train_booster()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> StateModels:
    """One small XGBoost model per state: `<prefix>/<STATE>.tar.gz` (multi-model tests)."""
    return write_state_models(
        make_churn(3000, seed=3), tmp_path_factory.mktemp("mme"), states=STATES
    )
