"""One AWS JSON 1.1 request, as the SageMaker control API, Application Auto Scaling and
CloudWatch Logs take them: the operation named by `X-Amz-Target`, the parameters a JSON
object in the body, the answer a JSON object (or an error, gateway/errors.py), each with
its request id."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from modelhost.errors import SerializationException
from modelhost.gateway.asgi import Receive, Scope, Send, read_body, respond
from modelhost.gateway.errors import JSON_11, error_payload

# (X-Amz-Target, body) → the operation's result
Dispatch = Callable[[str, bytes], Awaitable[Any]]


async def serve(scope: Scope, receive: Receive, send: Send, max_body: int, call: Dispatch) -> None:
    """Read the request (at most `max_body` bytes), answer what `call` returns or raises."""
    request_id = str(uuid.uuid4())
    try:
        body = await read_body(receive, max_body)
        target = dict(scope["headers"]).get(b"x-amz-target", b"").decode("latin-1")
        data = json.dumps(await call(target, body)).encode()
        status = 200
        headers = [
            (b"content-type", JSON_11.encode()),
            (b"x-amzn-requestid", request_id.encode()),
            (b"content-length", str(len(data)).encode()),
        ]
    except Exception as exc:
        status, headers, data = error_payload(exc, request_id, JSON_11)
    await respond(send, status, headers, data)


def params(body: bytes) -> dict[str, Any]:
    """The request's parameters: a JSON object (an empty body is none)."""
    try:
        out = json.loads(body or b"{}")
    except ValueError as exc:
        raise SerializationException(f"The request body is not valid JSON: {exc}") from exc
    if not isinstance(out, dict):
        raise SerializationException("The request body must be a JSON object.")
    return out
