"""The control-plane API: SageMaker JSON 1.1 (`POST` + `X-Amz-Target: SageMaker.<Op>`)."""

from __future__ import annotations

from modelhost.control.service import ControlPlane
from modelhost.errors import UnknownOperation
from modelhost.gateway import json11
from modelhost.gateway.asgi import Receive, Scope, Send

_PREFIX = "SageMaker."
_MAX_CONTROL_BODY = 16 * 1024 * 1024


class ControlAPI:
    """Dispatches on X-Amz-Target to `ControlPlane` operations."""

    def __init__(self, control: ControlPlane) -> None:
        self.control = control

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await json11.serve(scope, receive, send, _MAX_CONTROL_BODY, self._dispatch)

    async def _dispatch(self, target: str, body: bytes) -> dict[str, object]:
        return self.dispatch(target, body)

    def dispatch(self, target: str, body: bytes) -> dict[str, object]:
        operation = target[len(_PREFIX) :] if target.startswith(_PREFIX) else ""
        if operation not in self.control.operations:
            raise UnknownOperation(
                f"Operation '{target}' is not supported by modelhost. Supported: "
                + ", ".join(sorted(self.control.operations))
            )
        return self.control.call(operation, json11.params(body))
