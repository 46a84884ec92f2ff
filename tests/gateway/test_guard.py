"""The guard as a plain ASGI wrapper (no process): what reaches the app, what is refused."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from modelhost.gateway.auth.guard import Guard
from modelhost.gateway.auth.keys import KeyStore
from modelhost.settings import Settings


def _run(guard: Guard, scope: dict[str, Any], body: bytes = b"") -> tuple[list[Any], bytes]:
    sent: list[Any] = []
    reached: list[bytes] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        reached.append(message.get("body", b""))

    asyncio.run(guard(scope, receive, send, app))
    return sent, reached[0] if reached else b"<not reached>"


def _scope(method: str, path: str, headers: dict[str, str], kind: str = "http") -> dict[str, Any]:
    return {
        "type": kind,
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "scheme": "http",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }


def test_signed_body_is_replayed_to_the_app(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    keys = KeyStore(tmp_path)
    creds = keys.create("deployer")
    body = json.dumps({"EndpointName": "e"}).encode()
    aws = AWSRequest(
        method="POST",
        url="http://127.0.0.1:8080/",
        data=body,
        headers={"X-Amz-Target": "SageMaker.DescribeEndpoint"},
    )
    SigV4Auth(Credentials(*creds), "sagemaker", "us-east-1").add_auth(aws)
    headers = {**dict(aws.headers.items()), "Host": "127.0.0.1:8080"}
    sent, reached = _run(Guard(settings, keys), _scope("POST", "/", headers), body)
    assert sent == [] and reached == body


def test_refusals_never_reach_the_app(tmp_path: Path) -> None:
    guard = Guard(Settings(home=tmp_path), KeyStore(tmp_path))
    sent, reached = _run(guard, _scope("GET", "/api/alarms", {"host": "x"}))
    assert reached == b"<not reached>" and sent[0]["status"] == 403
    assert b"MissingAuthenticationTokenException" in sent[1]["body"]
    sent, reached = _run(guard, _scope("GET", "/ws", {"host": "x"}, kind="websocket"))
    assert sent == [{"type": "websocket.close", "code": 1008}]
    # Public paths and lifespan pass untouched.
    sent, reached = _run(guard, _scope("GET", "/ping", {"host": "x"}))
    assert sent == [] and reached == b""
