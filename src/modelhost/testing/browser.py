"""A headless Chromium for the dashboard, driven by Playwright for Python.

The browser is the operating system's (Debian's `chromium` package, installed by CI); this
never runs `playwright install`, which would download a browser build. `chromium_path()`
says where it is, or why not, so tests can skip with a reason.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def chromium_path() -> str | None:
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def missing_reason() -> str | None:
    """Why the dashboard's browser tests cannot run here, or None when they can."""
    if chromium_path() is None:
        return "no chromium on PATH (apt-get install -y chromium; .ci/run installs it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    return None


@contextmanager
def browser_page(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A fresh page (own cookies) in a headless Chromium; closed on exit."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    if path is None:
        raise RuntimeError(missing_reason())
    with sync_playwright() as pw:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        browser = pw.chromium.launch(
            executable_path=path, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            context = browser.new_context(viewport={"width": width, "height": height})
            yield context.new_page()
        finally:
            browser.close()


def sign_in(page: Any, url: str, access_key_id: str, secret: str) -> Any:
    """Open the dashboard at `url` and submit the sign-in form; the response of the form."""
    page.goto(url + "/dashboard")
    page.fill("#access_key_id", access_key_id)
    page.fill("#secret_access_key", secret)
    with page.expect_navigation() as nav:
        page.click("#sign-in button[type=submit]")
    return nav.value
