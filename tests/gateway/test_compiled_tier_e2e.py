"""The compiled tier end to end: a real server with `compile_tree_models` auto (the default,
which the suite's conftest turns off for every other test), a multi-model
endpoint of per-state XGBoost models, boto3. The instance compiles each model it loads in
a child process, says so in the endpoint's log (CloudWatch Logs), and keeps answering
with the same bits as XGBoost in process."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelhost.fleet.launch import build_launch_spec
from modelhost.settings import Settings
from modelhost.testing.churn import csv_body, make_churn
from modelhost.testing.server import ModelhostServer
from modelhost.testing.state_models import StateModels, write_state_models
from tests.support import FAST_ENV, XGBOOST_IMAGE, deploy, unique

STATES = ("CA", "NY", "TX")
ATTACHED = "now predicts with its compiled form"


@pytest.fixture(scope="module")
def tier_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelhostServer]:
    env = {
        **FAST_ENV,
        "MODELHOST_LOGS_POLL_INTERVAL_S": "0.2",
        "MODELHOST_COMPILE_TREE_MODELS": "auto",  # CI has gcc and Treelite: compiled
    }
    with ModelhostServer(tmp_path_factory.mktemp("tier-home"), env=env) as srv:
        yield srv


@pytest.fixture(scope="module")
def states(tmp_path_factory: pytest.TempPathFactory) -> StateModels:
    return write_state_models(
        make_churn(3000, seed=4), tmp_path_factory.mktemp("tier-states"), states=STATES
    )


def _predict(rt: Any, name: str, state: str, rows: np.ndarray) -> np.ndarray:
    answer = rt.invoke_endpoint(
        EndpointName=name,
        ContentType="text/csv",
        Body=csv_body(rows),
        TargetModel=f"{state}.tar.gz",
    )
    text = answer["Body"].read().decode()
    return np.array([float(v) for v in re.split("[,\n]", text) if v], dtype=np.float32)


def _attached_lines(logs: Any, endpoint: str) -> list[str]:
    group = f"/aws/sagemaker/Endpoints/{endpoint}"
    try:
        found = logs.filter_log_events(logGroupName=group, filterPattern=f'"{ATTACHED}"')
    except logs.exceptions.ResourceNotFoundException:
        return []
    return [e["message"] for e in found["events"]]


@pytest.mark.integration
def test_multi_model_instance_switches_to_compiled_forms_with_the_same_answers(
    tier_server: ModelhostServer, states: StateModels
) -> None:
    sm, rt = tier_server.clients()
    logs = tier_server.client("logs")
    name = unique("tier")
    # The measured crossover depends on the machine; a fixed one keeps the test exact.
    deploy(
        sm,
        name,
        str(states.prefix) + "/",
        mode="MultiModel",
        environment={"MH_INSTANCE_COMPILE_MAX_ROWS": "64"},
    )
    for state in STATES:  # loads each model: the tier compiles it meanwhile
        got = _predict(rt, name, state, states.rows[state])
        assert np.array_equal(got, states.expected(state, states.rows[state]))
    deadline = time.monotonic() + 180
    while len(lines := _attached_lines(logs, name)) < len(STATES):
        assert time.monotonic() < deadline, f"compiled forms attached: {lines}"
        time.sleep(0.5)
    models = sorted(re.search(rf"(\S+) {ATTACHED}", line).group(1) for line in lines)  # type: ignore[union-attr]
    assert models == sorted(f"{s}.tar.gz" for s in STATES)
    for state in STATES:  # now answered by the compiled forms: the same bits
        for rows in (states.rows[state][:1], states.rows[state]):
            assert np.array_equal(_predict(rt, name, state, rows), states.expected(state, rows))
    sm.delete_endpoint(EndpointName=name)


def _spec_env(tmp_path: Path, mode: str, environment: dict[str, str]) -> dict[str, str]:
    spec = build_launch_spec(
        settings=Settings(home=tmp_path, compile_tree_models=mode),
        endpoint_name="e",
        variant_name="v",
        model_name="m",
        model_spec={"PrimaryContainer": {"Image": XGBOOST_IMAGE, "Environment": environment}},
        fetch=lambda _: tmp_path,
        fetch_source=lambda _: tmp_path,
    )
    return spec.env


def test_the_setting_is_the_default_and_a_models_environment_wins(tmp_path: Path) -> None:
    assert Settings.model_fields["compile_tree_models"].default == "auto"
    assert _spec_env(tmp_path, "auto", {})["MH_INSTANCE_COMPILE_TREES"] == "auto"
    assert _spec_env(tmp_path, "false", {})["MH_INSTANCE_COMPILE_TREES"] == "off"
    env = _spec_env(tmp_path, "true", {})
    assert env["MH_INSTANCE_COMPILE_TREES"] == "on"
    assert env["MH_INSTANCE_COMPILE_CACHE_DIR"] == str(tmp_path / "compiled")
    off = _spec_env(tmp_path, "auto", {"MH_INSTANCE_COMPILE_TREES": "off"})
    assert off["MH_INSTANCE_COMPILE_TREES"] == "off"
    on = _spec_env(tmp_path, "off", {"MH_INSTANCE_COMPILE_TREES": "on"})
    assert on["MH_INSTANCE_COMPILE_TREES"] == "on"


def test_a_bad_setting_names_the_values(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'auto', 'on' or 'off'"):
        Settings(home=tmp_path, compile_tree_models="sometimes")
