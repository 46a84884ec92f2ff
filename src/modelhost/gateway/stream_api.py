"""InvokeEndpointWithResponseStream's HTTP edge:
`POST /endpoints/{EndpointName}/invocations-response-stream`.

Validated like InvokeEndpoint (the same header rules; the model's Accept comes in
`X-Amzn-SageMaker-Accept`), then the data plane's streamed invocation
(fleet/dataplane/streaming.py). Anything refused before the stream starts is an ordinary
runtime error answer (ValidationError, ModelError, ...). Once it has started, the answer is
`200 application/vnd.amazon.eventstream`: one `PayloadPart` event per part, as the parts
arrive, and a failure ends the stream with a `ModelStreamError` or `InternalStreamFailure`
event, which boto3 raises while the caller iterates `response["Body"]`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable

from modelhost.errors import InternalStreamFailure, ModelStreamError, ValidationError
from modelhost.fleet.dataplane.plane import Invocation
from modelhost.fleet.dataplane.streaming import Streamed, StreamingPlane
from modelhost.gateway import eventstream
from modelhost.gateway.asgi import Receive, Scope, Send, read_body, respond
from modelhost.gateway.errors import error_payload
from modelhost.gateway.runtime_api import (
    check_headers,
    parse_invocation_path,
    sync_invocation_headers,
    validate_runtime_name,
)

log = logging.getLogger("modelhost.gateway")

ACTION = "invocations-response-stream"
_ACCEPT = b"x-amzn-sagemaker-accept"
_TARGET_VARIANT = b"x-amzn-sagemaker-target-variant"
# Sent to the container as they came (Accept is renamed from X-Amzn-SageMaker-Accept).
_FORWARD = (
    b"content-type",
    b"x-amzn-sagemaker-custom-attributes",
    b"x-amzn-sagemaker-inference-id",
    b"x-amzn-sagemaker-session-id",
)


class StreamAPI:
    """Serves InvokeEndpointWithResponseStream (see the module docstring)."""

    def __init__(
        self,
        plane: StreamingPlane,
        max_payload_bytes: int,
        account_id: str,
        is_async: Callable[[str], bool] = lambda _name: False,
    ) -> None:
        self.plane = plane
        self.max_payload_bytes = max_payload_bytes
        self.account_id = account_id
        self.is_async = is_async

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = str(uuid.uuid4())
        try:
            streamed = await self._open(scope, receive, request_id)
        except Exception as exc:
            await respond(send, *error_payload(exc, request_id, "application/json"))
            return
        # A client that goes away ends the stream (and the instance's connection) at once.
        watcher = asyncio.ensure_future(_on_disconnect(receive, streamed.close))
        try:
            await self._send_stream(send, streamed, request_id)
        finally:
            watcher.cancel()
            streamed.close()
        for job in streamed.shadow_jobs:
            self.plane.plane.shadows.start(job)

    async def _open(self, scope: Scope, receive: Receive, request_id: str) -> Streamed:
        started = time.perf_counter()
        parsed = parse_invocation_path(scope.get("raw_path") or scope["path"].encode())
        assert parsed is not None and parsed[1] == ACTION  # the runtime API routes it here
        name = parsed[0]
        headers = sync_invocation_headers(name, scope, self.is_async, self.max_payload_bytes)
        accept = headers.get(_ACCEPT)
        if accept is not None:
            check_headers({b"accept": accept})
        body = await read_body(receive, self.max_payload_bytes)
        route = self.plane.plane.route(name, self.account_id)
        if not body:
            raise ValidationError(
                "1 validation error detected: Value at 'body' failed to satisfy constraint: "
                "Member must not be empty"
            )
        forward = [(k, v) for k, v in scope["headers"] if k in _FORWARD]
        # The HTTP Accept is the client's (for the event stream), not the model's.
        headers.pop(b"accept", None)
        if accept is not None:
            forward.append((b"accept", accept))
            headers[b"accept"] = accept
        raw_variant = headers.get(_TARGET_VARIANT)
        target_variant = None
        if raw_variant is not None:
            target_variant = raw_variant.decode("latin-1")
            validate_runtime_name(target_variant, "targetVariant")
        request = Invocation(
            endpoint=name,
            headers=headers,
            forward=forward,
            body=body,
            target_model=None,  # the streaming API has no TargetModel
            target_variant=target_variant,
            started_s=started,
            request_id=request_id,
        )
        return await self.plane.invoke(route, request)

    async def _send_stream(self, send: Send, streamed: Streamed, request_id: str) -> None:
        head = [
            (b"content-type", eventstream.CONTENT_TYPE),
            (b"x-amzn-sagemaker-content-type", streamed.content_type),
            (b"x-amzn-invoked-production-variant", streamed.variant.encode()),
            (b"x-amzn-requestid", request_id.encode()),
        ]
        if streamed.custom_attributes is not None:
            head.append((b"x-amzn-sagemaker-custom-attributes", streamed.custom_attributes))
        await send({"type": "http.response.start", "status": 200, "headers": head})
        try:
            async for part in streamed.parts:
                for message in eventstream.payload_parts(part):
                    await send({"type": "http.response.body", "body": message, "more_body": True})
        except ModelStreamError as exc:
            last = eventstream.exception(exc.code, {"Message": exc.message, **_str(exc)})
        except Exception as exc:
            log.error("response stream failed", exc_info=exc)
            failure = InternalStreamFailure(
                f"Internal failure while streaming ({type(exc).__name__}); request id {request_id}."
            )
            last = eventstream.exception(failure.code, {"Message": failure.message})
        else:
            last = b""
        await send({"type": "http.response.body", "body": last, "more_body": False})


async def _on_disconnect(receive: Receive, close: Callable[[], None]) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    close()


def _str(exc: ModelStreamError) -> dict[str, str]:
    return {k: str(v) for k, v in exc.extra_fields().items()}
