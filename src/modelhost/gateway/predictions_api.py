"""The prediction store's REST API: `/predictions/...` (raw ASGI: a lookup is the hot path).

  GET    /predictions                    every store and its current run
  GET    /predictions/{store}            the store's current run (id, key count, loaded at)
  DELETE /predictions/{store}            drop the store
  GET    /predictions/{store}/{key}      one prediction (keys are URL-encoded; may hold '/')
  POST   /predictions/{store}/batch-get  body {"Keys": [...]} (or a bare list), up to 1000
  POST   /predictions/{store}/load       body {"InputLocation", "OutputLocation", "KeyColumn",
                                         "ContentType", "Accept", "RunId", "HasHeader"}

A JSON-valued prediction (JSON Lines output) is sent as the JSON value; a CSV one as the
output line, a string.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import unquote

from modelhost.errors import (
    MethodNotAllowed,
    PredictionNotFound,
    ValidationException,
)
from modelhost.gateway.asgi import Receive, Scope, Send, read_body, respond
from modelhost.gateway.errors import error_payload
from modelhost.settings import Settings
from modelhost.store.predictions import (
    PredictionStore,
    RunInfo,
    ValueFormat,
    load_transform_output,
)
from modelhost.store.predictions.base import (
    check_key,
    check_keys,
    check_store_name,
    no_such_store,
)

T = TypeVar("T")
_JSON = [(b"content-type", b"application/json")]
_MAX_BODY_BYTES = 1 << 20


class PredictionsAPI:
    """Serves lookups, listing, loading and deletion for one prediction-store backend."""

    def __init__(self, backend: PredictionStore, settings: Settings) -> None:
        self.backend = backend
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            status, body = await self._route(scope, receive)
            headers = [*_JSON, (b"content-length", str(len(body)).encode())]
            await respond(send, status, headers, body)
        except Exception as exc:
            status, headers, body = error_payload(exc, str(uuid.uuid4()), "application/json")
            await respond(send, status, headers, body)

    async def _route(self, scope: Scope, receive: Receive) -> tuple[int, bytes]:
        raw: bytes = scope.get("raw_path") or scope["path"].encode()
        head, *parts = raw.rstrip(b"/").split(b"/")[1:]
        if head != b"predictions":
            raise PredictionNotFound(f"No route {scope['path']}; see /predictions.")
        method = scope["method"]
        if not parts:
            self._allow(method, "GET")
            runs = await self._call(self.backend.list_stores)
            return 200, _dumps({"Stores": [r.to_api() for r in runs]})
        store = check_store_name(unquote(parts[0].decode("latin-1")))
        if len(parts) == 1:
            self._allow(method, "GET", "DELETE")
            if method == "DELETE":
                if not await self._call(self.backend.delete, store):
                    raise no_such_store(store)
                return 200, _dumps({"StoreName": store, "Deleted": True})
            current = await self._call(self.backend.describe, store)
            if current is None:
                raise no_such_store(store)
            return 200, _dumps(current.to_api())
        rest = b"/".join(parts[1:])
        if method == "POST" and rest == b"batch-get":
            return 200, await self._batch_get(store, await _json_body(receive))
        if method == "POST" and rest == b"load":
            return 200, await self._load(store, await _json_body(receive))
        self._allow(method, "GET")
        try:
            key = check_key(unquote(rest.decode("latin-1"), errors="strict"))
        except UnicodeDecodeError as exc:
            raise ValidationException(f"The key is not URL-encoded UTF-8: {exc}") from exc
        run, value = await self.backend.get_async(store, key)
        if value is None:
            raise PredictionNotFound(
                f"Key '{key}' is not in prediction store '{store}' (current run {run.run_id}, "
                f"{run.key_count} keys)."
            )
        return 200, (
            b'{"StoreName":' + _dumps(store) + b',"Key":' + _dumps(key)
            + b',"RunId":' + _dumps(run.run_id)
            + b',"Prediction":' + _value(run, value) + b"}"
        )  # fmt: skip

    async def _batch_get(self, store: str, body: Any) -> bytes:
        raw_keys = body.get("Keys") if isinstance(body, dict) else body
        keys = check_keys(raw_keys)
        found = await self.backend.get_many_async(store, keys)
        run = found.run
        pairs = b",".join(_dumps(k) + b":" + _value(run, v) for k, v in found.values.items())
        missing = [k for k in dict.fromkeys(keys) if k not in found.values]
        return (
            b'{"StoreName":' + _dumps(store) + b',"RunId":' + _dumps(run.run_id)
            + b',"Predictions":{' + pairs + b'},"MissingKeys":' + _dumps(missing) + b"}"
        )  # fmt: skip

    async def _load(self, store: str, body: Any) -> bytes:
        if not isinstance(body, dict):
            raise ValidationException("The body must be a JSON object.")
        for field in ("InputLocation", "OutputLocation", "KeyColumn"):
            if not isinstance(body.get(field), str | int) or body.get(field) == "":
                raise ValidationException(f"{field} is required.")
        header = body.get("HasHeader")
        if header is not None and not isinstance(header, bool):
            raise ValidationException("HasHeader must be true or false.")
        run = await asyncio.to_thread(
            load_transform_output,
            store,
            body["KeyColumn"],
            str(body["InputLocation"]),
            str(body["OutputLocation"]),
            str(body.get("ContentType") or "text/csv"),
            self.settings,
            accept=body.get("Accept"),
            run_id=body.get("RunId"),
            has_header=header,
            prediction_store=self.backend,
        )
        return _dumps({**run.to_api(), "Loaded": run.loaded})

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        # An embedded lookup takes microseconds: a thread hop would cost more than it does.
        if self.backend.inline_ok:
            return fn(*args)
        return await asyncio.to_thread(fn, *args)

    @staticmethod
    def _allow(method: str, *allowed: str) -> None:
        if method not in allowed:
            raise MethodNotAllowed(f"{method} is not allowed here; use {' or '.join(allowed)}.")

    async def aclose(self) -> None:
        await self.backend.aclose()


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _value(run: RunInfo, value: str) -> bytes:
    # JSON values were checked when loaded; embedding them saves a parse per lookup.
    return value.encode() if run.value_format is ValueFormat.JSON else _dumps(value)


async def _json_body(receive: Receive) -> Any:
    data = await read_body(receive, _MAX_BODY_BYTES)
    try:
        return json.loads(data or b"null")
    except ValueError as exc:
        raise ValidationException(f"The body is not valid JSON: {exc}") from exc
