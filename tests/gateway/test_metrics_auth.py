"""/metrics behind authentication: a signature from any valid key, the scrape token as a
bearer token, or open only when `metrics_public` says so."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from modelhost.errors import UnsafeConfiguration
from modelhost.gateway.auth.guard import Guard
from modelhost.gateway.auth.keys import KeyStore
from modelhost.gateway.server import check_safe
from modelhost.settings import Settings
from modelhost.testing.server import ModelhostServer

TOKEN = "scrape-token-0123456789"


def _get(guard: Guard, path: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """(status, error body) the guard answers, or (200, {}) when it lets the request through."""
    sent: list[Any] = []
    reached: list[bool] = []
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "scheme": "http",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(True)

    asyncio.run(guard(scope, receive, send, app))
    if reached:
        return 200, {}
    return sent[0]["status"], json.loads(sent[1]["body"])


def _signed(creds: tuple[str, str], path: str = "/metrics") -> dict[str, str]:
    aws = AWSRequest(method="GET", url=f"http://127.0.0.1:8080{path}", data=b"")
    SigV4Auth(Credentials(*creds), "sagemaker", "us-east-1").add_auth(aws)
    return {"host": "127.0.0.1:8080", **dict(aws.headers.items())}


def _guard(tmp_path: Path, **settings: Any) -> tuple[Guard, tuple[str, str]]:
    keys = KeyStore(tmp_path)
    invoker = keys.create("invoker", "some-endpoint")
    return Guard(Settings(home=tmp_path, **settings), keys), invoker


def test_unsigned_metrics_are_refused_by_default(tmp_path: Path) -> None:
    guard, _ = _guard(tmp_path)
    status, body = _get(guard, "/metrics", {"host": "127.0.0.1:8080"})
    assert (status, body["__type"]) == (403, "MissingAuthenticationTokenException")


def test_any_valid_key_reads_metrics(tmp_path: Path) -> None:
    guard, invoker = _guard(tmp_path)
    assert _get(guard, "/metrics", _signed(invoker))[0] == 200


def test_scrape_token(tmp_path: Path) -> None:
    guard, _ = _guard(tmp_path, metrics_token=TOKEN)
    assert _get(guard, "/metrics", {"authorization": f"Bearer {TOKEN}"})[0] == 200
    status, body = _get(guard, "/metrics", {"authorization": "Bearer not-the-token"})
    assert (status, body["__type"]) == (403, "AccessDeniedException")
    # The token reads /metrics and nothing else.
    status, body = _get(guard, "/api/alarms", {"authorization": f"Bearer {TOKEN}"})
    assert (status, body["__type"]) == (403, "IncompleteSignatureException")


def test_bearer_without_a_configured_token_is_refused(tmp_path: Path) -> None:
    guard, _ = _guard(tmp_path)
    status, body = _get(guard, "/metrics", {"authorization": "Bearer anything"})
    assert (status, body["__type"]) == (403, "AccessDeniedException")
    assert "metrics_token" in body["Message"]


def test_metrics_public_opens_it(tmp_path: Path) -> None:
    guard, _ = _guard(tmp_path, metrics_public=True)
    assert _get(guard, "/metrics", {"host": "127.0.0.1:8080"})[0] == 200


def _status(request: urllib.request.Request | str) -> int:
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            resp.read()
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.integration
def test_metrics_auth_on_a_live_server(tmp_path: Path) -> None:
    with ModelhostServer(tmp_path / "home", env={"MODELHOST_METRICS_TOKEN": TOKEN}) as srv:
        url = srv.url + "/metrics"
        assert _status(url) == 403
        assert _status(srv.signed("GET", "/metrics")) == 200
        bearer = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
        assert _status(bearer) == 200
        wrong = urllib.request.Request(url, headers={"Authorization": "Bearer nope"})
        assert _status(wrong) == 403


def test_a_short_token_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(UnsafeConfiguration, match="at least 16 characters"):
        check_safe(Settings(home=tmp_path, metrics_token="short"))
    check_safe(Settings(home=tmp_path, metrics_token=TOKEN))
