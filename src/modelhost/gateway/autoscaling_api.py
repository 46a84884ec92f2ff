"""The Application Auto Scaling API: JSON 1.1, `X-Amz-Target: AnyScaleFrontendService.<Op>`
(botocore's `application-autoscaling` client; SigV4 signing name `application-autoscaling`).
The operations live in `scaling/service.py`; this module decodes, dispatches and encodes."""

from __future__ import annotations

import json
import uuid

from modelhost.errors import SerializationException, UnknownOperation
from modelhost.gateway.asgi import Receive, Scope, Send, read_body, respond
from modelhost.gateway.errors import JSON_11, error_payload
from modelhost.scaling.service import ScalingService

TARGET_PREFIX = "AnyScaleFrontendService."
_MAX_BODY = 1024 * 1024


class AutoScalingAPI:
    """Dispatches `AnyScaleFrontendService.*` calls to `ScalingService` operations."""

    def __init__(self, service: ScalingService) -> None:
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = str(uuid.uuid4())
        try:
            body = await read_body(receive, _MAX_BODY)
            target = dict(scope["headers"]).get(b"x-amz-target", b"").decode("latin-1")
            data = json.dumps(self.dispatch(target, body)).encode()
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
        operation = target[len(TARGET_PREFIX) :] if target.startswith(TARGET_PREFIX) else ""
        if operation not in self.service.operations:
            raise UnknownOperation(
                f"Operation '{target}' is not supported by modelhost's Application Auto "
                f"Scaling API. Supported: {', '.join(sorted(self.service.operations))}"
            )
        try:
            params = json.loads(body or b"{}")
        except ValueError as exc:
            raise SerializationException(f"The request body is not valid JSON: {exc}") from exc
        if not isinstance(params, dict):
            raise SerializationException("The request body must be a JSON object.")
        return self.service.call(operation, params)
