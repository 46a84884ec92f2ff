"""The V2 generate extension (Triton's, also MLServer's): text in, text out, streamed as SSE.

    POST /v2/models/{name}[/versions/{v}]/generate          one JSON answer
    POST /v2/models/{name}[/versions/{v}]/generate_stream   Server-Sent Events, one per part

The request is a JSON object, `{"text_input": "...", "parameters": {...}}` plus whatever
else the model reads; it goes to the model as it came (`application/json`), so the model
(a script-mode `input_fn`, a user's server) reads `text_input` and its parameters itself.
The model's answer is text: `/generate` answers `{"model_name", "model_version",
"text_output"}` with the whole body, `/generate_stream` answers `text/event-stream` with one
`data: {"model_name", "model_version", "text_output"}` event per part the model streams
(each chunk it writes, as InvokeEndpointWithResponseStream relays it; a model that does
not stream gives one event). Parts are decoded as UTF-8 across part boundaries.

Errors before anything was sent are V2's JSON `{"error": ...}` with its status
(`v2_api.v2_error`); once the event stream has started, a failure is a last
`data: {"error": "..."}` event, as the extension specifies.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from modelhost.errors import ModelhostError, ValidationError
from modelhost.fleet.dataplane.plane import Invocation
from modelhost.fleet.dataplane.streaming import Streamed, StreamingPlane
from modelhost.gateway.asgi import Receive, Scope, Send, check_content_length, read_body

log = logging.getLogger("modelhost.gateway")

GENERATE, GENERATE_STREAM = "generate", "generate_stream"
SSE = b"text/event-stream; charset=utf-8"
_PASS = (b"x-amzn-sagemaker-custom-attributes", b"x-amzn-sagemaker-inference-id")


class V2Generate:
    """Serves `/generate` and `/generate_stream` over the streaming data plane."""

    def __init__(self, plane: StreamingPlane, max_payload_bytes: int, account_id: str) -> None:
        self.plane = plane
        self.max_payload_bytes = max_payload_bytes
        self.account_id = account_id

    async def open(
        self, scope: Scope, receive: Receive, endpoint: str, target: str | None, version: str | None
    ) -> Streamed:
        """Validate the request and start the model's answer (raises before anything is
        sent, for V2's error answer)."""
        started = time.perf_counter()
        headers = dict(scope["headers"])
        check_content_length(headers, self.max_payload_bytes)
        body = await read_body(receive, self.max_payload_bytes)
        _check_request(body)
        route = self.plane.plane.route(endpoint, self.account_id)
        sent = {b"content-type": b"application/json"}
        for header in _PASS:
            if header in headers:
                sent[header] = headers[header]
        request = Invocation(
            endpoint=endpoint,
            headers=sent,
            forward=list(sent.items()),
            body=body,
            target_model=target,  # a multi-model endpoint's answer is one part
            target_variant=version,
            started_s=started,
            request_id=str(uuid.uuid4()),
        )
        return await self.plane.invoke(route, request)

    async def answer(
        self, receive: Receive, send: Send, streamed: Streamed, name: str, verb: str
    ) -> None:
        """The answer in the verb's form; `streamed` is closed when it is done, or as soon
        as the client goes away."""
        watcher = asyncio.ensure_future(_on_disconnect(receive, streamed.close))
        try:
            if verb == GENERATE:
                text = "".join([t async for t in _texts(streamed.parts)])
                doc = _output(name, streamed.variant, text)
                await _whole(send, 200, json.dumps(doc).encode())
                return
            await send({"type": "http.response.start", "status": 200, "headers": _sse_head()})
            try:
                async for text in _texts(streamed.parts):
                    event = _event(_output(name, streamed.variant, text))
                    await send({"type": "http.response.body", "body": event, "more_body": True})
                last = b""
            except Exception as exc:
                last = _event({"error": _message(exc)})
            await send({"type": "http.response.body", "body": last, "more_body": False})
        finally:
            watcher.cancel()
            streamed.close()


async def _on_disconnect(receive: Receive, close: Callable[[], None]) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    close()


async def _texts(parts: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """The parts as text, a character split between two parts kept whole."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    async for part in parts:
        text = decoder.decode(part)
        if text:
            yield text
    tail = decoder.decode(b"", final=True)
    if tail:
        yield tail


def _check_request(body: bytes) -> None:
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise ValidationError(f"the generate request is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ValidationError("the generate request must be a JSON object")
    if "text_input" in doc and not isinstance(doc["text_input"], str):
        raise ValidationError("text_input must be a string")
    if not isinstance(doc.get("parameters", {}), dict):
        raise ValidationError("parameters must be an object of name/value pairs")


def _output(name: str, variant: str, text: str) -> dict[str, Any]:
    return {"model_name": name, "model_version": variant, "text_output": text}


def _event(doc: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(doc).encode() + b"\n\n"


def _sse_head() -> list[tuple[bytes, bytes]]:
    return [(b"content-type", SSE), (b"cache-control", b"no-cache")]


def _message(exc: BaseException) -> str:
    if isinstance(exc, ModelhostError):
        return exc.message
    log.error("generate stream failed", exc_info=exc)
    return f"internal failure ({type(exc).__name__})"


async def _whole(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
