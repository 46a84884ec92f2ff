"""The host agent in front of a user's own multi-model server (BYOC with Mode MultiModel).

SageMaker's contract gives a multi-model container a LOCAL directory in `POST /models`
`url`; the platform's host agent downloads the artifact first and, when the container
answers 507, unloads a model for it. modelhost's gateway sends the artifact's location
instead (the instance reads the artifact store itself), so for a server that follows the
contract this agent plays the host agent on the instance: the BYOC supervisor
(`container.supervise`) runs the user's server on an inner port and this proxy on the
instance port. It

- answers `POST /models` by fetching `url` (`container.model_source`: a local directory
  passes through as it is) and forwarding the load with the local path;
- on a 507 from the server, unloads the server's least recently used idle model
  (`DELETE /models/{name}`) and tries again, as SageMaker's agent does, except when the
  server says the model alone is larger than its budget;
- adds the built-in container's extra fields to the load answer (`loadingTimeUs`,
  `evicted`, `downloadingTimeUs` after a real download), so the gateway reports the same
  metrics for both;
- forwards everything else unchanged (`/ping`, invocations, `GET`/`DELETE /models`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote

import aiohttp
from yarl import URL

from modelhost.container.asgi import JSON, Headers, Receive, Scope, Send, read_body, respond
from modelhost.container.model_source import LoadRefused, ModelSource, parse_load_request

log = logging.getLogger("modelhost.container")

FRESH_S = 5.0  # a just-loaded model is kept for its first request this long (model_cache)
MAX_UNLOADS = 64  # 507 → unload → retry rounds for one load
# Neither forwarded nor copied back: they describe one hop, not the message.
_HOP_HEADERS = frozenset(
    {b"host", b"connection", b"keep-alive", b"content-length", b"transfer-encoding", b"upgrade"}
)


def pick_victim(
    order: Mapping[str, float], busy: Mapping[str, int], now_s: float, keep: str
) -> str | None:
    """The least recently used model to unload: not `keep`, no request in flight, not fresh.

    `order` maps each loaded model, least recently used first, to the time until which it
    is fresh (just loaded, not yet used; 0 once used).
    """
    for name, fresh_until_s in order.items():
        if name != keep and not busy.get(name) and now_s >= fresh_until_s:
            return name
    return None


class HostAgent:
    """ASGI proxy to the user's server on `inner_port`; see the module docstring."""

    def __init__(self, source: ModelSource, inner_port: int) -> None:
        self.source = source
        self.base = f"http://127.0.0.1:{inner_port}"
        self._session: Any = None
        self._order: OrderedDict[str, float] = OrderedDict()  # LRU first → fresh until
        self._busy: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        if body is None:
            return
        path, method = scope["path"], scope["method"]
        if path == "/models" and method == "POST":
            status, doc = await self.load(body)
            await respond(send, status, json.dumps(doc).encode(), JSON)
            return
        name = _invoked_model(scope)
        if name is not None:
            self._use(name, 1)
        try:
            status, headers, out = await self._forward(scope, body)
        except aiohttp.ClientError as exc:  # the server is not listening (yet, or any more)
            message = f"the model server is not answering: {exc}"
            await respond(send, 503, json.dumps({"code": 503, "message": message}).encode(), JSON)
            return
        finally:
            if name is not None:
                self._use(name, -1)
        parts = _path_parts(scope)
        if method == "DELETE" and len(parts) == 3 and parts[1] == "models" and status in (200, 404):
            self._order.pop(parts[2], None)
            self.source.release(parts[2])
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": out})

    async def load(self, body: bytes) -> tuple[int, dict[str, Any]]:
        """`POST /models` with a location: fetch, load with the local path, unload on 507."""
        try:
            load = parse_load_request(body)
        except LoadRefused as exc:
            return exc.status, {"code": exc.status, "message": exc.message}
        name, url = load.name, load.url
        started = time.perf_counter()
        try:
            local, fetched = await asyncio.to_thread(self.source.fetch, name, url)
        except LoadRefused as exc:
            return exc.status, {"code": exc.status, "message": exc.message, **exc.extra}
        downloading_us = (time.perf_counter() - started) * 1e6 if fetched else None
        # A user's server gets SageMaker's contract only (no `expect_use`).
        request = json.dumps({**load.fields, "url": str(local)}).encode()
        try:
            return await self._load_local(name, url, request, downloading_us)
        except aiohttp.ClientError as exc:
            self.source.release(name)
            message = f"Model {name}: the model server is not answering: {exc}"
            return 503, {"code": 503, "message": message}

    async def _load_local(
        self, name: str, url: str, request: bytes, downloading_us: float | None
    ) -> tuple[int, dict[str, Any]]:
        evicted: list[dict[str, Any]] = []
        for _round in range(MAX_UNLOADS):
            started = time.perf_counter()
            status, out = await self._call("POST", "/models", request)
            loading_us = (time.perf_counter() - started) * 1e6
            answer = _json_object(out)
            if status != 507 or _alone_too_large(answer):
                break
            victim = pick_victim(self._order, self._busy, time.monotonic(), name)
            if victim is None or not await self._unload(victim, evicted):
                break
        if status in (200, 409):
            fresh = time.monotonic() + FRESH_S if status == 200 else 0.0
            self._order[name] = max(fresh, self._order.pop(name, 0.0))
        if status != 200:
            if status != 409:  # not loaded (409: it was already): its entry may go
                self.source.release(name)
            return status, answer or {"code": status, "message": out.decode("utf-8", "replace")}
        log.info("model %s loaded by the model server (%.1f ms)", name, loading_us / 1000)
        extra = {} if downloading_us is None else {"downloadingTimeUs": downloading_us}
        own = answer.get("evicted")
        if isinstance(own, list):  # a server that evicts by itself may say so: both count
            evicted = [e for e in own if isinstance(e, dict)] + evicted
        for gone in evicted:
            self._order.pop(str(gone.get("modelName")), None)
        return 200, {
            **answer,
            "modelName": name,
            "modelUrl": url,
            "loadingTimeUs": loading_us,
            "evicted": evicted,
            **extra,
        }

    async def _unload(self, name: str, evicted: list[dict[str, Any]]) -> bool:
        started = time.perf_counter()
        status, _out = await self._call("DELETE", "/models/" + quote(name, safe=""), b"")
        if status not in (200, 404):
            return False
        self._order.pop(name, None)
        self.source.release(name)
        if status == 200:
            unloading_us = (time.perf_counter() - started) * 1e6
            evicted.append({"modelName": name, "unloadingTimeUs": unloading_us})
            log.info("model %s unloaded to make room (%.1f ms)", name, unloading_us / 1000)
        return True

    def _use(self, name: str, delta: int) -> None:
        count = self._busy.get(name, 0) + delta
        if count > 0:
            self._busy[name] = count
        else:
            self._busy.pop(name, None)
        if delta > 0 and name in self._order:
            self._order[name] = 0.0  # used: no longer fresh
            self._order.move_to_end(name)

    async def _call(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"} if body else {}
        async with self._session.request(
            method, self.base + path, data=body, headers=headers
        ) as answer:
            return answer.status, await answer.read()

    async def _forward(self, scope: Scope, body: bytes) -> tuple[int, Headers, bytes]:
        target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in scope["headers"]
            if k not in _HOP_HEADERS
        ]
        url = URL(self.base + target.decode("latin-1"), encoded=True)
        async with self._session.request(
            scope["method"], url, data=body, headers=headers
        ) as answer:
            out = await answer.read()
            back = [(k, v) for k, v in answer.raw_headers if k.lower() not in _HOP_HEADERS]
            back.append((b"content-length", str(len(out)).encode()))
            return answer.status, back, out

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=0),
                    timeout=aiohttp.ClientTimeout(total=None),
                    auto_decompress=False,
                    skip_auto_headers=("User-Agent", "Accept-Encoding"),
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._session is not None:
                    await self._session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _path_parts(scope: Scope) -> list[str]:
    """The path's segments, each percent-decoded (so a model name may contain `/`)."""
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    return [unquote(p.decode("latin-1")) for p in raw.split(b"?", 1)[0].split(b"/")]


def _invoked_model(scope: Scope) -> str | None:
    """The model of `POST /models/{name}/invoke`, else None."""
    if scope["method"] != "POST" or not scope["path"].startswith("/models/"):
        return None
    parts = _path_parts(scope)
    return parts[2] if len(parts) == 4 and parts[3] == "invoke" else None


def _alone_too_large(doc: Mapping[str, Any]) -> bool:
    size, budget = doc.get("memoryBytes"), doc.get("budgetBytes")
    return isinstance(size, int) and isinstance(budget, int) and size > budget


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}
