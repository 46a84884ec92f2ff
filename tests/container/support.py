"""Helpers for the in-process container tests: a loaded instance app, one request through
its ASGI interface, and the base of toy runtimes that answer from `handle`."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from functools import partial
from pathlib import Path
from typing import Any

from modelhost.container.app import InstanceApp, ModelState
from modelhost.container.config import InstanceConfig
from modelhost.container.invoke import Reply, ServedModel, batches, invoke_batched
from modelhost.frameworks.base import Runtime

Response = tuple[int, dict[str, str], bytes]


def loaded_app(model_dir: Path, **config: Any) -> InstanceApp:
    """An `InstanceApp` for `model_dir` with its model loaded (READY); close it after."""
    app = InstanceApp(InstanceConfig(model_dir=model_dir, **config))
    app._load()
    assert app.state is ModelState.READY, app.reason
    return app


def invoke_all_batched(
    model: ServedModel, requests: list[tuple[bytes, dict[str, str]]]
) -> dict[int, Reply]:
    """Offer every request to `model`'s batcher in one loop turn through `invoke_batched`,
    as the instance's HTTP server does (no task per request); the answers by index."""

    async def main() -> dict[int, Reply]:
        answers: dict[int, Reply] = {}
        for i, (body, headers) in enumerate(requests):
            raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
            assert batches(model, body)
            now = invoke_batched(model, body, raw, partial(answers.__setitem__, i))
            if now is not None:
                answers[i] = now
        while len(answers) < len(requests):
            await asyncio.sleep(0)
        return answers

    return asyncio.run(main())


async def asgi_request(
    app: InstanceApp,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    chunks: int = 1,
) -> Response:
    """(status, headers, body) of one request through `app`'s ASGI interface, the body
    sent in `chunks` messages."""
    size = max(1, -(-len(body) // chunks))
    parts = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
        for i, part in enumerate(parts)
    ]
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }
    await app(scope, receive, send)
    start = sent[0]
    response_headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], response_headers, b"".join(m.get("body", b"") for m in sent[1:])


class HandleRuntime(Runtime):
    """A toy runtime that answers from `handle`, as script mode does: `load` keeps the
    directory, `predict` is never called."""

    def load(self, model_dir: Path) -> None:
        self.model_dir = model_dir

    def predict(self, data: Any) -> Any:
        raise AssertionError("handle does not call predict")
