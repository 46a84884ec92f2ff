"""Fixtures for container tests."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
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


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    """The thread pool `container.invoke` runs user code on, as the instance's is named."""
    with ThreadPoolExecutor(1, thread_name_prefix="predict") as pool:
        yield pool


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> StateModels:
    """One small XGBoost model per state: `<prefix>/<STATE>.tar.gz` (multi-model tests)."""
    return write_state_models(
        make_churn(3000, seed=3), tmp_path_factory.mktemp("mme"), states=STATES
    )
