"""Prediction-store backends on real servers: embedded (a file), redis-server, moto's DynamoDB."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelhost.settings import Settings
from modelhost.store.predictions import PredictionStore, open_prediction_store
from modelhost.testing.dynamodb import local_dynamodb_server
from modelhost.testing.redis import local_redis_server
from tests.store.predictions.support import store_url

# redis-server and moto's DynamoDB are real processes on loopback.
BACKENDS = [
    "embedded",
    pytest.param("redis", marks=pytest.mark.integration),
    pytest.param("dynamodb", marks=pytest.mark.integration),
]


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with local_redis_server() as url:
        yield url


@pytest.fixture(scope="session")
def dynamodb_endpoint() -> Iterator[str]:
    with local_dynamodb_server() as endpoint_url:
        yield endpoint_url


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials for moto, through the standard boto3 chain."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PredictionStore]:
    settings = Settings(
        home=tmp_path / "home", prediction_store_url=store_url(request.param, request)
    )
    store = open_prediction_store(settings)
    try:
        yield store
    finally:
        for run in store.list_stores():
            store.delete(run.store)
        store.close()


@pytest.fixture
def name() -> str:
    """A store name no other test uses (Redis and moto are shared by the session)."""
    return f"churn-{uuid.uuid4().hex[:10]}"
