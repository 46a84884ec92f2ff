"""The control-plane API: SageMaker JSON 1.1 (`POST` + `X-Amz-Target: SageMaker.<Op>`)."""

from __future__ import annotations

import json
import uuid

from modelhost.control.service import ControlPlane
from modelhost.errors import SerializationException, UnknownOperation
from modelhost.gateway.asgi import Receive, Scope, Send, read_body, respond
from modelhost.gateway.errors import JSON_11, error_payload

_PREFIX = "SageMaker."
_MAX_CONTROL_BODY = 16 * 1024 * 1024


class ControlAPI:
    """Dispatches on X-Amz-Target to `ControlPlane` operations."""

    def __init__(self, control: ControlPlane) -> None:
        self.control = control

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = str(uuid.uuid4())
        try:
            body = await read_body(receive, _MAX_CONTROL_BODY)
            target = dict(scope["headers"]).get(b"x-amz-target", b"").decode("latin-1")
            result = self.dispatch(target, body)
            data = json.dumps(result).encode()
            status = 200
            headers = [
                (b"content-type", JSON_11.encode()),
                (b"x-amzn-requestid", request_id.encode()),
                (b"content-length", str(len(data)).encode()),
            ]
        except Exception as exc:
            status, headers, data = error_payload(exc, request_id, JSON_11)
        await respond(send, status, headers, data)

    def dispatch(self, target: str, body: bytes) -> dict[str, object]:
        operation = target[len(_PREFIX) :] if target.startswith(_PREFIX) else ""
        if operation not in self.control.operations:
            raise UnknownOperation(
                f"Operation '{target}' is not supported by modelhost. Supported: "
                + ", ".join(sorted(self.control.operations))
            )
        try:
            params = json.loads(body or b"{}")
        except ValueError as exc:
            raise SerializationException(f"The request body is not valid JSON: {exc}") from exc
        if not isinstance(params, dict):
            raise SerializationException("The request body must be a JSON object.")
        return self.control.call(operation, params)
