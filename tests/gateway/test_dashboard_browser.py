"""The dashboard in a real headless Chromium against a real server: sign-in, the endpoint,
charts with data after invocations, a canary rollback drawn as events, sign-out."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from modelhost.testing.browser import browser_page, missing_reason, sign_in
from modelhost.testing.churn import csv_rows
from modelhost.testing.server import ModelhostServer
from tests.gateway.support import (
    canary_one_instance,
    create_model_and_config,
    put_5xx_alarm,
    wait_in_service,
)
from tests.support import ChurnModel, Loop, unique

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(missing_reason() is not None, reason=str(missing_reason())),
]

WAIT_MS = 60_000


def _chart_value(page: Any, endpoint: str, chart: str, attribute: str) -> int:
    found = page.get_attribute(
        f'[data-detail="{endpoint}"] [data-chart="{chart}"]', attribute, timeout=WAIT_MS
    )
    return int(found or 0)


def _wait_chart(page: Any, endpoint: str, chart: str, attribute: str) -> None:
    """Until the chart's `attribute` (set by the page after drawing) is above 0."""
    page.wait_for_function(
        """([endpoint, chart, attribute]) => {
            const node = document.querySelector(
                `[data-detail="${endpoint}"] [data-chart="${chart}"]`);
            return node && Number(node.getAttribute(attribute) || 0) > 0;
        }""",
        arg=[endpoint, chart, attribute],
        timeout=WAIT_MS,
    )


def test_wrong_secret_is_refused(server: ModelhostServer) -> None:
    key_id, _ = server.credentials
    with browser_page() as page:
        response = sign_in(page, server.url, key_id, "not-the-secret")
        assert response.status == 401
        assert "wrong secret" in page.inner_text(".error")
        assert page.query_selector("#endpoints") is None
        # Without a session the data route is refused as well.
        status = page.evaluate("async () => (await fetch('/api/dashboard/snapshot')).status")
        assert status == 403


def test_signed_in_dashboard_shows_charts_and_a_rollback(
    server: ModelhostServer,
    churn_model: ChurnModel,
    churn_model_small: ChurnModel,
    failing_artifact: Path,
) -> None:
    sm, rt = server.clients(retries={"max_attempts": 1, "mode": "standard"})
    name, other = unique("dash"), unique("dash-other")
    create_model_and_config(sm, name, churn_model.artifact, 1)
    create_model_and_config(sm, f"{name}-green", failing_artifact, 4)
    create_model_and_config(sm, other, churn_model_small.artifact, 1)
    for endpoint in (name, other):
        sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=endpoint)
    for endpoint in (name, other):
        wait_in_service(sm, endpoint)
    row = csv_rows(churn_model.data.X[:1])[0]
    for _ in range(20):
        for endpoint in (name, other):
            rt.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body=row)
    key_id, secret = server.credentials
    with browser_page() as page:
        response = sign_in(page, server.url, key_id, secret)
        assert response.status == 200
        cookie = next(c for c in page.context.cookies() if c["name"] == "modelhost_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        page.goto(f"{server.url}/dashboard#endpoint={name}&range=5m")
        page.wait_for_selector(f'#endpoints tr[data-endpoint="{name}"]', timeout=WAIT_MS)
        assert "InService" in page.inner_text(f'#endpoints tr[data-endpoint="{name}"]')
        assert page.inner_text(f'[data-detail="{name}"] tr[data-variant="AllTraffic"]')
        # After the invocations the charts draw non-empty series.
        _wait_chart(page, name, "invocations", "data-nonzero")
        _wait_chart(page, name, "model_latency", "data-nonzero")
        assert _chart_value(page, name, "invocations", "data-series") >= 3
        assert page.query_selector(f'[data-detail="{name}"] [data-chart="cpu"] canvas')
        # Compare: the second endpoint's charts beside the first's.
        page.select_option("#compare", other)
        _wait_chart(page, other, "invocations", "data-nonzero")
        columns = page.eval_on_selector_all(
            "[data-detail]", "els => els.map(e => e.dataset.detail)"
        )
        assert columns == [name, other]
        # Each instance's own account (GET /modelhost/stats, polled by the gateway): its
        # batching counters and the compiled tier's state (off on this server).
        tier = f'[data-detail="{name}"] table.instances tr[data-instance] td.tier'
        page.wait_for_selector(tier, timeout=WAIT_MS)
        assert page.inner_text(tier) == "off"

        _roll_back_a_canary(server, sm, rt, name, row)
        # The rollback reaches the page by itself (no reload): listed and drawn on charts.
        page.wait_for_selector(
            f'[data-detail="{name}"] .events tr[data-status="RollingBack"]', timeout=WAIT_MS
        )
        _wait_chart(page, name, "invocations", "data-events-drawn")
        page.wait_for_selector(f'#alarms tr[data-alarm="{name}-5xx"]', timeout=WAIT_MS)

        with page.expect_navigation():
            page.click("#sign-out button")
        assert page.query_selector("#sign-in") is not None
        status = page.evaluate("async () => (await fetch('/api/dashboard/snapshot')).status")
        assert status == 403


def _roll_back_a_canary(server: ModelhostServer, sm: Any, rt: Any, name: str, row: str) -> None:
    """A canary to a failing config that its 5XX alarm rolls back (as the guardrail tests)."""
    put_5xx_alarm(server, f"{name}-5xx", name)
    with Loop(rt, name, row):
        sm.update_endpoint(
            EndpointName=name,
            EndpointConfigName=f"{name}-green",
            DeploymentConfig=canary_one_instance(f"{name}-5xx"),
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if sm.describe_endpoint(EndpointName=name)["EndpointStatus"] != "Updating":
                break
            time.sleep(0.2)
    desc = sm.describe_endpoint(EndpointName=name)
    assert desc["EndpointStatus"] == "InService" and desc["EndpointConfigName"] == name
