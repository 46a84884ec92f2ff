"""Locust against a real server: the CLI, stepped phases with failures by code, a multi-model
endpoint with TargetModel per State, and Locust's distributed mode. Bounded: a few users
for a few seconds, loopback only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from modelhost.loadtest.run import load_test
from modelhost.loadtest.spec import LoadSpec, constant_phase, parse_phases
from modelhost.testing.churn import csv_rows, make_churn
from modelhost.testing.server import ModelhostServer
from modelhost.testing.state_models import write_state_models
from tests.support import ChurnModel, cli, deploy, unique

pytestmark = pytest.mark.integration

STATES = ("CA", "NY", "TX")


@pytest.fixture(scope="module")
def endpoint(server: ModelhostServer, churn_model: ChurnModel) -> str:
    sm, _ = server.clients()
    name = unique("lt")
    deploy(sm, name, str(churn_model.artifact))
    return name


@pytest.fixture(scope="module")
def payload(tmp_path_factory: pytest.TempPathFactory, churn_model: ChurnModel) -> Path:
    path = tmp_path_factory.mktemp("payload") / "rows.csv"
    path.write_text("\n".join(csv_rows(churn_model.data.X[:30])) + "\n")
    return path


def spec_for(server: ModelhostServer, endpoint: str, payload: Path, **kwargs: Any) -> LoadSpec:
    key_id, secret = server.credentials
    return LoadSpec(
        endpoint=endpoint,
        payload_path=str(payload),
        endpoint_url=server.url,
        access_key_id=key_id,
        secret_access_key=secret,
        **kwargs,
    )


def test_cli_prints_the_table_and_writes_the_reports(
    server: ModelhostServer, endpoint: str, payload: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    done = cli(
        server,
        "loadtest",
        endpoint,
        "--payload",
        str(payload),
        "--users",
        "3",
        "--spawn-rate",
        "10",
        "--duration",
        "4s",
        "--out",
        str(out),
        "--seed",
        "1",
    )
    assert done.returncode == 0, done.stderr
    assert "users" in done.stdout and "req/s" in done.stdout  # progress lines
    assert "p99 ms" in done.stdout and "max ms" in done.stdout  # the final table
    result = json.loads((out / "results.json").read_text())
    summary = result["Summary"]
    assert summary["Requests"] > 0
    assert summary["Failures"] == 0
    assert summary["LatencyMs"]["p50"] is not None
    assert summary["LatencyMs"]["p50"] <= summary["LatencyMs"]["p99"] <= summary["LatencyMs"]["max"]
    assert max(p["Users"] for p in result["Timeline"]) == 3
    # The endpoint's own view of the same window, through the CloudWatch API.
    latency = result["EndpointMetrics"]["ModelLatency avg (ms)"]["AllTraffic"]
    assert latency and all(v > 0 for _t, v in latency)
    assert "CPUUtilization (%)" in result["EndpointMetrics"]
    assert (out / "stats.csv").read_text().startswith("Endpoint,Requests,Failures")
    assert len((out / "history.csv").read_text().splitlines()) == len(result["Timeline"]) + 1
    html = (out / "report.html").read_text()
    assert html.count("<svg") >= 5 and "http://" not in html.replace("http://www.w3.org", "")
    assert not (out / ".spec.json").exists()  # the signing key is not left behind


def test_phases_step_the_users_and_failures_count_by_code(
    server: ModelhostServer, endpoint: str, churn_model: ChurnModel, tmp_path: Path
) -> None:
    payload = tmp_path / "mixed.csv"
    good = csv_rows(churn_model.data.X[:5])
    payload.write_text("\n".join([*good, "1,2,3"]) + "\n")  # one row of 3 features: a 4xx
    phases = parse_phases(
        [
            {"InitialNumberOfUsers": 1, "SpawnRate": 0, "DurationInSeconds": 3},
            {"InitialNumberOfUsers": 3, "SpawnRate": 0, "DurationInSeconds": 3},
        ]
    )
    lines: list[str] = []
    result = load_test(
        spec_for(server, endpoint, payload, phases=phases, seed=3),
        tmp_path / "out",
        cloudwatch=server.client("cloudwatch"),
        echo=lines.append,
    )
    assert lines  # progress was relayed
    users = [p["Users"] for p in result["Timeline"]]
    assert 1 in users and 3 in users
    summary = result["Summary"]
    assert 0 < summary["Failures"] < summary["Requests"]
    assert set(summary["FailuresByCode"]) == {"ModelError"}
    assert sum(summary["FailuresByCode"].values()) == summary["Failures"]


def test_multi_model_endpoint_gets_each_row_on_its_states_model(
    server: ModelhostServer, tmp_path: Path
) -> None:
    data = make_churn(3000, seed=5)
    models = write_state_models(data, tmp_path / "states", states=STATES)
    sm, _ = server.clients()
    name = unique("lt-mme")
    deploy(sm, name, str(models.prefix), mode="MultiModel")
    payload = tmp_path / "states.csv"
    lines = ["State," + ",".join(f"f{i}" for i in range(data.X.shape[1]))]
    for state in STATES:
        lines.extend(f"{state},{row}" for row in csv_rows(models.rows[state]))
    payload.write_text("\n".join(lines) + "\n")
    spec = spec_for(
        server,
        name,
        payload,
        phases=(constant_phase(3, 10, 5),),
        target_model_column="State",
        seed=2,
    )
    result = load_test(spec, tmp_path / "out", echo=lambda _line: None)
    assert result["Summary"]["Failures"] == 0
    assert set(result["RequestsByName"]) == {f"{s}.tar.gz" for s in STATES}
    loaded = server.call("GET", f"/api/endpoints/{name}/models")
    held = {m["ModelName"] for i in loaded["Instances"] for m in i["Models"]}
    assert {f"{s}.tar.gz" for s in STATES} <= held


def test_distributed_mode_runs_locust_workers(
    server: ModelhostServer, endpoint: str, payload: Path, tmp_path: Path
) -> None:
    spec = spec_for(server, endpoint, payload, phases=(constant_phase(4, 20, 5),), workers=2)
    result = load_test(spec, tmp_path / "out", echo=lambda _line: None)
    assert result["Workers"] == 2
    assert result["Summary"]["Requests"] > 0
    assert result["Summary"]["Failures"] == 0
    assert max(p["Users"] for p in result["Timeline"]) == 4


def test_only_the_locust_process_imports_locust() -> None:
    code = (
        "import sys\n"
        "import modelhost.cli, modelhost.loadtest.run, modelhost.gateway.app\n"
        "assert 'locust' not in sys.modules and 'gevent.monkey' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
