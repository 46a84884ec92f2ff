"""The dashboard's cost-advice form in a real headless Chromium: the seeds' nightly batch
job against an always-on endpoint, and a refused number shown as an error."""

from __future__ import annotations

from typing import Any

import pytest

from modelhost.testing.browser import browser_page, missing_reason, sign_in
from modelhost.testing.server import ModelhostServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(missing_reason() is not None, reason=str(missing_reason())),
]

WAIT_MS = 60_000


def _fill(page: Any, values: dict[str, str]) -> None:
    for name, value in values.items():
        selector = f'#advise-form [name="{name}"]'
        if name == "Prices":
            page.select_option(selector, value)
        else:
            page.fill(selector, value)


def test_advice_form_shows_the_recommendation_beside_the_alternatives(
    server: ModelhostServer,
) -> None:
    key_id, secret = server.credentials
    with browser_page() as page:
        assert sign_in(page, server.url, key_id, secret).status == 200
        page.goto(f"{server.url}/dashboard")
        page.uncheck('#advise-form [name="Live"]')
        _fill(
            page,
            {
                "BatchMinutesPerRun": "3",
                "BatchInstanceType": "ml.m5.4xlarge",
                "InstanceType": "ml.m5.2xlarge",
                "Prices": "seeds-2021",
            },
        )
        page.click("#advise-form button[type=submit]")
        page.wait_for_selector("#advice .recommendation", timeout=WAIT_MS)
        recommended = page.get_attribute("#advice .recommendation", "data-option")
        assert recommended == "batch-transform"
        assert "1.61" in page.inner_text("#advice .recommendation .cost")
        always_on = page.inner_text('#advice tr[data-option="real-time"] .cost')
        assert always_on.startswith("387.")
        assert page.query_selector_all("#advice .path li")  # the decision path is shown

        # A number the advisor refuses is reported, not a blank answer.
        page.fill('#advise-form [name="Models"]', "0")
        page.click("#advise-form button[type=submit]")
        page.wait_for_selector("#advice .error", timeout=WAIT_MS)
        assert "Models" in page.inner_text("#advice .error")
