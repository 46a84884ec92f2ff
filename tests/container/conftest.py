"""Fixtures for container tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.container.instance_support import train_booster


@pytest.fixture(scope="session")
def trained() -> tuple[Any, np.ndarray]:
    """(booster, rows) shared by all container tests."""
    return train_booster()
