"""Helpers for the in-process multi-model tests: a `MultiModelHost` over real XGBoost state
models, one request through its ASGI interface, loading a state's model, and requests
offered to the host as the instance's HTTP server offers them (`offer_together`)."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from modelhost.container.asgi import Message
from modelhost.container.config import InstanceConfig
from modelhost.container.http_connection import Request
from modelhost.container.invoke import Reply
from modelhost.container.multimodel import MultiModelHost
from modelhost.testing.state_models import StateModels

Answer = tuple[int, bytes]


def multimodel_host(tmp_path: Path, batching: bool = True) -> MultiModelHost:
    """A multi-model instance app with its artifact cache under `tmp_path`."""
    env = {
        "SAGEMAKER_MULTI_MODEL": "true",
        "MH_INSTANCE_BATCHING": "on" if batching else "off",
        "MH_INSTANCE_ARTIFACT_CACHE_DIR": str(tmp_path / "cache"),
    }
    return MultiModelHost(InstanceConfig.from_env(env), ThreadPoolExecutor(1))


async def call(host: MultiModelHost, path: str, body: bytes, target: str = "") -> Answer:
    """POST `body` to `path` (a CSV invocation of `target` if given, else JSON): status, body."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    headers = [(b"content-type", b"text/csv" if target else b"application/json")]
    if target:
        headers.append((b"x-amzn-sagemaker-target-model", target.encode()))
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "headers": headers,
        "query_string": b"",
    }
    await host(scope, receive, send)
    return sent[0]["status"], sent[1]["body"]


async def load_model(host: MultiModelHost, models: StateModels, state: str) -> None:
    """Load `state`'s model (`POST /models`) and check it answered 200."""
    doc = {"model_name": f"{state}.tar.gz", "url": str(models.prefix / f"{state}.tar.gz")}
    status, body = await call(host, "/models", json.dumps(doc).encode())
    assert status == 200, body


class Connection:
    """What `TickInvoker` needs of an `HttpConnection`: replies are recorded in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.replies: list[Reply] = []
        self.held = False

    def reply(self, reply: Reply, keep_alive: bool) -> None:
        self.replies.append(reply)

    def hold(self) -> None:
        assert not self.held, "one request at a time per connection"
        self.held = True

    def release(self) -> None:
        assert self.held
        self.held = False

    def abort(self) -> None:
        raise AssertionError("no connection is aborted here")


def invoke_request(name: str, body: bytes) -> Request:
    """`POST /models/{name}/invoke` of a CSV `body`, as the instance's HTTP server parses it."""
    headers = [(b"content-type", b"text/csv"), (b"x-amzn-sagemaker-target-model", name.encode())]
    return Request(b"POST", f"/models/{name}/invoke".encode(), headers, body, True, "1.1")


def offer_together(host: MultiModelHost, requests: list[Request]) -> list[tuple[bool, Connection]]:
    """Offer every request in one callback (one loop turn), one connection each, and let
    the loop run until the turn's answers are written."""

    async def scenario() -> list[tuple[bool, Connection]]:
        loop = asyncio.get_running_loop()
        out = []
        for request in requests:
            connection = Connection(loop)
            out.append((host.offer(connection, request), connection))  # type: ignore[arg-type]
        for _ in range(3):
            await asyncio.sleep(0)
        return out

    return asyncio.run(scenario())
