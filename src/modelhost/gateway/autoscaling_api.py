"""The Application Auto Scaling API: JSON 1.1, `X-Amz-Target: AnyScaleFrontendService.<Op>`
(botocore's `application-autoscaling` client; SigV4 signing name `application-autoscaling`).
The operations live in `scaling/service.py`; this module decodes, dispatches and encodes."""

from __future__ import annotations

from modelhost.errors import UnknownOperation
from modelhost.gateway import json11
from modelhost.gateway.asgi import Receive, Scope, Send
from modelhost.scaling.service import ScalingService

TARGET_PREFIX = "AnyScaleFrontendService."
_MAX_BODY = 1024 * 1024


class AutoScalingAPI:
    """Dispatches `AnyScaleFrontendService.*` calls to `ScalingService` operations."""

    def __init__(self, service: ScalingService) -> None:
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await json11.serve(scope, receive, send, _MAX_BODY, self._dispatch)

    async def _dispatch(self, target: str, body: bytes) -> dict[str, object]:
        return self.dispatch(target, body)

    def dispatch(self, target: str, body: bytes) -> dict[str, object]:
        operation = target[len(TARGET_PREFIX) :] if target.startswith(TARGET_PREFIX) else ""
        if operation not in self.service.operations:
            raise UnknownOperation(
                f"Operation '{target}' is not supported by modelhost's Application Auto "
                f"Scaling API. Supported: {', '.join(sorted(self.service.operations))}"
            )
        return self.service.call(operation, json11.params(body))
