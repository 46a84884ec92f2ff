"""Shared fixtures: a trained churn model, real `modelhost serve` processes, and a real
PostgreSQL (`--metadata-store postgresql` runs the shared server on it)."""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelhost.testing import server as testing_server
from modelhost.testing.churn import ChurnData, make_churn, train_xgboost, write_xgboost_artifact
from modelhost.testing.postgres import PostgresCluster, local_postgres_server, postgres_bin_dir
from modelhost.testing.server import ModelhostServer
from tests.support import FAST_ENV, ChurnModel

# The test files CI runs a second time with `--metadata-store postgresql` (`-m pg`):
# those that write the most kinds of records through a server (endpoint lifecycles and
# restarts, deployments and rollbacks, scaling, alarms, jobs, schedules, access keys).
# docs/scale-out.md "Tests on PostgreSQL" lists them; keep the two in step.
PG_FILES = frozenset(
    {
        "tests/gateway/test_realtime_e2e.py",
        "tests/gateway/test_variants_e2e.py",
        "tests/gateway/test_bandit_e2e.py",
        "tests/jobs/test_transform_e2e.py",
        "tests/jobs/test_transform_crashes.py",
        "tests/jobs/test_async_e2e.py",
        "tests/jobs/test_async_crash.py",
        "tests/scaling/test_api_e2e.py",
        "tests/scaling/test_autoscaling_e2e.py",
        "tests/monitor/test_monitor_e2e.py",
        "tests/monitor/test_monitor_restart.py",
        "tests/gateway/test_lifecycle.py",
        "tests/gateway/test_guardrails_e2e.py",
        "tests/gateway/test_rolling_e2e.py",
        "tests/gateway/test_shadow_e2e.py",
        "tests/gateway/test_pipeline_e2e.py",
        "tests/gateway/test_auth_e2e.py",
        "tests/gateway/test_cloudwatch_e2e.py",
        "tests/compile/test_compile_durability.py",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.split("::")[0] in PG_FILES:
            item.add_marker(pytest.mark.pg)
    slow_first(items)


def slow_first(items: list[pytest.Item]) -> None:
    """The modules with a test that starts processes (`integration`, `ray`) run first, each
    module's tests still together and in their order: under `pytest -n 2` the run then ends
    on the many sub-second tests, which xdist hands out in small batches to whichever worker
    is free, rather than on the end-to-end tests of the last files (examples, the demo),
    where one worker finished minutes before the other."""
    slow = {
        item.nodeid.split("::")[0]
        for item in items
        if item.get_closest_marker("integration") or item.get_closest_marker("ray")
    }
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in slow)


def pytest_configure(config: pytest.Config) -> None:
    """The master key of every key store and server the tests make goes to a throwaway
    config directory, not the user's `~/.config/modelhost` (gateway/auth/master_key.py);
    the compiled tier is off unless a test turns it on."""
    config.addinivalue_line(
        "markers", "pg: CI runs it again with --metadata-store postgresql (PG_FILES)"
    )
    # The compiled tier is on by default (`compile_tree_models` auto) and would run gcc for
    # every XGBoost endpoint the suite starts; its own tests turn it on
    # (tests/gateway/test_compiled_tier_e2e.py, tests/compile/test_tier.py).
    os.environ.setdefault("MODELHOST_COMPILE_TREE_MODELS", "off")
    config_home = tempfile.mkdtemp(prefix="modelhost-test-config-")
    os.environ["XDG_CONFIG_HOME"] = config_home
    config.add_cleanup(lambda: shutil.rmtree(config_home, ignore_errors=True))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--metadata-store",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="metadata store of every ModelhostServer the tests start (the shared `server` "
        "fixture and their own): SQLite in its home, or a fresh database per home on a "
        "PostgreSQL the session starts",
    )


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """One throwaway PostgreSQL server per session; tests take a fresh database each."""
    if postgres_bin_dir() is None:
        pytest.skip("PostgreSQL is not installed (apt-get install -y postgresql)")
    with local_postgres_server() as cluster:
        yield cluster


@pytest.fixture(scope="session", autouse=True)
def metadata_store(request: pytest.FixtureRequest) -> Iterator[str]:
    """The metadata store `--metadata-store` chose, for every `ModelhostServer` the tests
    start without a database URL of their own (the shared `server` and the tests' own):
    on PostgreSQL each home gets a fresh database, the same one across its restarts."""
    choice = request.config.getoption("--metadata-store")
    if choice == "sqlite":
        yield choice
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    databases: dict[Path, str] = {}

    def database_for_home(home: Path) -> str:
        key = home.resolve()
        if key not in databases:
            databases[key] = cluster.fresh_database_url()
        return databases[key]

    testing_server.use_metadata_store(database_for_home)
    yield choice
    testing_server.use_metadata_store(None)


@pytest.fixture(scope="session")
def churn_data() -> ChurnData:
    return make_churn(n_rows=2000, seed=7)


@pytest.fixture(scope="session")
def churn_model(churn_data: ChurnData, tmp_path_factory: pytest.TempPathFactory) -> ChurnModel:
    booster = train_xgboost(churn_data, num_round=100, seed=0)
    out = tmp_path_factory.mktemp("churn-model")
    return ChurnModel(churn_data, booster, write_xgboost_artifact(booster, out))


@pytest.fixture(scope="session")
def churn_model_small(
    churn_data: ChurnData, tmp_path_factory: pytest.TempPathFactory
) -> ChurnModel:
    """A second, different model (fewer trees) for update tests."""
    booster = train_xgboost(churn_data, num_round=10, seed=1)
    out = tmp_path_factory.mktemp("churn-model-small")
    return ChurnModel(churn_data, booster, write_xgboost_artifact(booster, out))


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelhostServer]:
    """One server shared by tests that use their own endpoint names."""
    home = tmp_path_factory.mktemp("modelhost-home")
    with ModelhostServer(home, env=FAST_ENV) as srv:
        yield srv


@pytest.fixture(scope="session")
def clients(server: ModelhostServer) -> tuple[Any, Any]:
    return server.clients(retries={"max_attempts": 1, "mode": "standard"})


@pytest.fixture()
def sm(clients: tuple[Any, Any]) -> Any:
    return clients[0]


@pytest.fixture()
def rt(clients: tuple[Any, Any]) -> Any:
    return clients[1]


FAILING_SCRIPT = """
def model_fn(model_dir):
    return None


def predict_fn(data, model):
    raise RuntimeError("green is broken on purpose")
"""


@pytest.fixture(scope="session")
def failing_artifact(tmp_path_factory: pytest.TempPathFactory, churn_model: ChurnModel) -> Path:
    root = tmp_path_factory.mktemp("failing")
    code = root / "code"
    code.mkdir()
    (code / "inference.py").write_text(FAILING_SCRIPT)
    artifact = root / "model.tar.gz"
    with tarfile.open(artifact, "w:gz") as tar:
        tar.add(code / "inference.py", arcname="code/inference.py")
    return artifact
