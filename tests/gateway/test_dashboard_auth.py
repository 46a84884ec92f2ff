"""Dashboard sessions and the guard's rules for the dashboard, without a process."""

from __future__ import annotations

import asyncio
import json
import stat
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from modelhost.gateway.auth.actions import Surface, classify
from modelhost.gateway.auth.guard import PRINCIPAL_SCOPE_KEY, Guard
from modelhost.gateway.auth.keys import KeyStore
from modelhost.gateway.auth.session import COOKIE, Sessions, cookie_value, is_loopback
from modelhost.settings import Settings
from modelhost.testing.clock import FakeClock
from modelhost.testing.server import ModelhostServer
from tests.support import FAST_ENV

SNAPSHOT = "/api/dashboard/snapshot"


def _call(
    guard: Guard,
    path: str,
    *,
    method: str = "GET",
    client: tuple[str, int] = ("127.0.0.1", 5000),
    cookie: str | None = None,
) -> tuple[int | None, dict[str, Any]]:
    """(status of a refusal or None when the app was reached, the scope the app saw)."""
    headers = [(b"cookie", f"{COOKIE}={cookie}".encode())] if cookie else []
    scope: dict[str, Any] = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "scheme": "http",
        "headers": headers,
        "client": client,
    }
    sent: list[Any] = []
    reached: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope)

    asyncio.run(guard(scope, receive, send, app))
    if reached:
        return None, reached[0]
    return sent[0]["status"], scope


@pytest.fixture()
def auth(tmp_path: Path) -> tuple[Guard, KeyStore, Sessions, FakeClock]:
    clock = FakeClock(1_800_000_000.0)
    keys = KeyStore(tmp_path)
    sessions = Sessions(tmp_path, ttl_s=3600, clock=clock)
    return Guard(Settings(home=tmp_path), keys, sessions=sessions), keys, sessions, clock


def test_a_cookie_is_signed_expires_and_names_its_key(tmp_path: Path) -> None:
    clock = FakeClock(1_800_000_000.0)
    sessions = Sessions(tmp_path, ttl_s=60, clock=clock)
    value = sessions.issue("MHKEY")
    assert sessions.verify(value) == "MHKEY"
    assert stat.S_IMODE(sessions.path.stat().st_mode) == 0o600
    key_id, expiry, mac = value.split(".")
    assert sessions.verify(f"MHOTHER.{expiry}.{mac}") is None  # tampered
    assert sessions.verify(f"{key_id}.{int(expiry) + 999}.{mac}") is None
    assert sessions.verify("garbage") is None and sessions.verify(None) is None
    # Another server home signs with another key.
    assert Sessions(tmp_path / "other", ttl_s=60, clock=clock).verify(value) is None
    clock.advance(61)
    assert sessions.verify(value) is None
    header = sessions.set_cookie(value, secure=False)
    assert "HttpOnly" in header and "SameSite=Strict" in header and "Max-Age=60" in header


def test_sign_in_checks_the_secret_and_the_key_status(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path)
    key_id, secret = keys.create("invoker", "churn-*")
    admin_id, _ = keys.create("admin")
    sessions = Sessions(tmp_path, ttl_s=60)
    assert sessions.sign_in(keys, key_id, secret + "x") is None
    assert sessions.sign_in(keys, "MHNOSUCHKEY", secret) is None
    value = sessions.sign_in(keys, key_id, secret)
    assert value is not None and sessions.verify(value) == key_id
    keys.revoke(key_id)
    assert sessions.sign_in(keys, key_id, secret) is None
    assert admin_id


def test_cookie_parsing_and_loopback() -> None:
    headers = [(b"cookie", f"a=1; {COOKIE}=v.1.m; b=2".encode())]
    assert cookie_value(headers) == "v.1.m" and cookie_value([]) is None
    assert is_loopback(("127.0.0.1", 1)) and is_loopback(("::1", 1))
    assert not is_loopback(("10.0.0.5", 1)) and not is_loopback(None)
    assert not is_loopback(("testclient", 1))


def test_dashboard_paths_are_their_own_surface() -> None:
    assert classify("GET", "/dashboard", None, True).surface is Surface.DASHBOARD
    assert classify("GET", "/dashboard/static/x.js", None, True).action is None
    target = classify("GET", SNAPSHOT, None, True)
    assert (target.surface, target.action) == (Surface.DASHBOARD, "modelhost:GetDashboard")
    assert classify("GET", "/dashboardx", None, True).surface is Surface.NATIVE


def test_auth_off_serves_loopback_clients_only(tmp_path: Path) -> None:
    guard = Guard(Settings(home=tmp_path, auth_enabled=False), None)
    for path in ("/dashboard", SNAPSHOT, "/dashboard/static/dashboard.js"):
        assert _call(guard, path)[0] is None
        assert _call(guard, path, client=("192.168.1.20", 5000))[0] == 403
        assert _call(guard, path, client=("::1", 5000))[0] is None


def test_auth_on_the_page_is_open_and_the_data_needs_a_session(
    auth: tuple[Guard, KeyStore, Sessions, FakeClock],
) -> None:
    guard, keys, sessions, clock = auth
    key_id, secret = keys.create("invoker")
    # The page (which shows the sign-in form) and the sign-in itself are open.
    assert _call(guard, "/dashboard", client=("10.1.2.3", 1))[0] is None
    assert _call(guard, "/dashboard/sign-in", method="POST", client=("10.1.2.3", 1))[0] is None
    assert _call(guard, SNAPSHOT)[0] == 403
    value = sessions.sign_in(keys, key_id, secret)
    assert value is not None
    status, scope = _call(guard, SNAPSHOT, cookie=value, client=("10.1.2.3", 1))
    assert status is None and scope[PRINCIPAL_SCOPE_KEY] == key_id
    assert _call(guard, SNAPSHOT, cookie=value + "x")[0] == 403
    clock.advance(3601)
    assert _call(guard, SNAPSHOT, cookie=value)[0] == 403


def test_a_sign_in_body_is_capped_even_without_a_length(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, max_api_body_bytes=1024)
    guard = Guard(settings, KeyStore(tmp_path), sessions=Sessions(tmp_path, ttl_s=60))
    sent: list[Any] = []
    chunks = [b"x" * 600, b"x" * 600]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": chunks.pop(0), "more_body": bool(chunks)}

    async def send(message: Any) -> None:
        sent.append(message)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("reached the app")

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/dashboard/sign-in",
        "raw_path": b"/dashboard/sign-in",
        "query_string": b"",
        "headers": [],
        "client": ("127.0.0.1", 1),
    }
    asyncio.run(guard(scope, receive, send, app))
    assert sent[0]["status"] == 413


def test_a_session_is_good_for_the_dashboard_only(
    auth: tuple[Guard, KeyStore, Sessions, FakeClock],
) -> None:
    guard, keys, sessions, _ = auth
    key_id, _ = keys.create("admin")
    value = sessions.issue(key_id)
    assert _call(guard, SNAPSHOT, cookie=value)[0] is None
    # Every other route still wants a signature, whatever the cookie.
    for method, path in (
        ("GET", "/api/alarms"),
        ("GET", "/api/keys"),
        ("POST", "/api/endpoints/e/promote-shadow"),
        ("GET", "/api/transform-jobs"),
    ):
        assert _call(guard, path, method=method, cookie=value)[0] in (400, 403), path


def test_revoking_a_key_ends_its_sessions(
    auth: tuple[Guard, KeyStore, Sessions, FakeClock],
) -> None:
    guard, keys, sessions, _ = auth
    keys.create("admin")
    key_id, _ = keys.create("invoker")
    value = sessions.issue(key_id)
    assert _call(guard, SNAPSHOT, cookie=value)[0] is None
    keys.revoke(key_id)
    assert _call(guard, SNAPSHOT, cookie=value)[0] == 403


@pytest.mark.integration
def test_auth_off_server_serves_this_machine_without_sign_in(tmp_path: Path) -> None:
    env = {**FAST_ENV, "MODELHOST_AUTH_ENABLED": "false"}
    with ModelhostServer(tmp_path / "home", env=env) as srv:
        with urllib.request.urlopen(srv.url + "/dashboard", timeout=10) as resp:
            assert 'data-auth="off"' in resp.read().decode()
        with urllib.request.urlopen(srv.url + SNAPSHOT + "?range=5m", timeout=10) as resp:
            doc = json.loads(resp.read())
        assert doc["Auth"] is False and doc["Endpoints"] == []
        # A client elsewhere, as a proxy on this machine reports it, is refused.
        proxied = urllib.request.Request(
            srv.url + "/dashboard", headers={"X-Forwarded-For": "203.0.113.9"}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(proxied, timeout=10)
        refused.value.close()
        assert refused.value.code == 403
