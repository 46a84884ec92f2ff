"""Helpers for the in-process multi-model tests: a `MultiModelHost` over real XGBoost state
models, one request through its ASGI interface, and loading a state's model."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from modelhost.container.asgi import Message
from modelhost.container.config import InstanceConfig
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
