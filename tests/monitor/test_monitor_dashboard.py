"""Model Monitor on the dashboard, in a real headless Chromium: an endpoint's schedule, its
last execution (CompletedWithViolations) with the violations, and the drift chart, read
through the same API the SDK uses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelhost.testing.browser import browser_page, missing_reason, sign_in
from modelhost.testing.churn import make_churn
from modelhost.testing.monitor import run_now
from modelhost.testing.server import ModelhostServer
from tests.monitor.support import (
    create_raw_model,
    deploy_raw,
    job_definition,
    send,
    table_baseline,
    table_rows,
    wait_captured,
)
from tests.support import FAST_ENV, ChurnModel

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(missing_reason() is not None, reason=str(missing_reason())),
]

WAIT_MS = 60_000


@pytest.fixture(scope="module")
def monitor_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelhostServer]:
    env = {**FAST_ENV, "MODELHOST_CAPTURE_FLUSH_INTERVAL_S": "0.2"}
    with ModelhostServer(tmp_path_factory.mktemp("monitor-dash-home"), env=env) as srv:
        yield srv


def test_dashboard_shows_executions_violations_and_drift(
    monitor_server: ModelhostServer, churn_model: ChurnModel, tmp_path: Path
) -> None:
    sm, rt = monitor_server.clients()
    model = create_raw_model(sm, churn_model.artifact, tmp_path)
    baseline = table_baseline(sm, tmp_path)
    endpoint = deploy_raw(sm, model, tmp_path / "capture")
    rows = table_rows(make_churn(400, seed=8), shift={"Day Mins": 80.0}, new_state_every=20)
    send(rt, endpoint, rows)
    wait_captured(tmp_path / "capture", endpoint, 20)
    schedule = f"{endpoint}-dq"
    execution = run_now(sm, schedule, job_definition(endpoint, baseline, tmp_path / "reports"))
    assert execution["MonitoringExecutionStatus"] == "CompletedWithViolations", execution

    key_id, secret = monitor_server.credentials
    with browser_page() as page:
        assert sign_in(page, monitor_server.url, key_id, secret).status == 200
        page.goto(f"{monitor_server.url}/dashboard#endpoint={endpoint}&range=15m")
        detail = f'[data-detail="{endpoint}"]'
        page.wait_for_selector(f'{detail} tr[data-schedule="{schedule}"]', timeout=WAIT_MS)
        page.wait_for_selector(
            f'{detail} tr.execution[data-execution-status="CompletedWithViolations"]',
            timeout=WAIT_MS,
        )
        drift = f'{detail} tr.violation[data-feature="Day Mins"]'
        assert page.get_attribute(drift, "data-check") == "baseline_drift_check"
        assert "Day Mins" in page.inner_text(drift)
        state = f'{detail} tr.violation[data-feature="State"]'
        assert page.get_attribute(state, "data-check") == "categorical_values_check"
        # The run's drift distances are a chart with one line per feature.
        page.wait_for_selector(f'{detail} [data-chart="drift"]', timeout=WAIT_MS)
        assert int(page.get_attribute(f'{detail} [data-chart="drift"]', "data-series") or 0) > 5
