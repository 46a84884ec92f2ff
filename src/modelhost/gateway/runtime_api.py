"""The runtime API's HTTP edge: `POST /endpoints/{EndpointName}/invocations`.

Hot path, written as a raw ASGI callable: parse the path, validate the headers and body
at the edge, call the data plane (fleet/dataplane), encode its answer or error. Shadow
copies start only after the answer is sent.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from urllib.parse import unquote

from modelhost.errors import ValidationError
from modelhost.fleet.dataplane.plane import DataPlane, Invocation
from modelhost.fleet.dataplane.shadow import ShadowJob
from modelhost.gateway.asgi import (
    ASGIApp,
    Receive,
    Scope,
    Send,
    check_content_length,
    read_body,
    respond,
)
from modelhost.gateway.errors import error_payload
from modelhost.gateway.multimodel import TARGET_MODEL, validate_target_model
from modelhost.gateway.request_ids import request_id as new_request_id
from modelhost.resources.names import runtime_name_error

# Request headers passed through to the container (SageMaker drops all others).
_FORWARD = (
    b"content-type",
    b"accept",
    b"x-amzn-sagemaker-custom-attributes",
    b"x-amzn-sagemaker-inference-id",
    b"x-amzn-sagemaker-target-variant",
)
# Header, the member SageMaker names in its validation message, and the length limit.
_CHECKED = (
    (b"content-type", "contentType", 1024),
    (b"accept", "accept", 1024),
    (b"x-amzn-sagemaker-custom-attributes", "customAttributes", 1024),
    (b"x-amzn-sagemaker-inference-id", "inferenceId", 64),
)
_TARGET_VARIANT = b"x-amzn-sagemaker-target-variant"
_STREAM = b"/invocations-response-stream"

Answer = tuple[int, list[tuple[bytes, bytes]], bytes]
AsyncHandler = Callable[[str, Scope, Receive, str], Awaitable[Answer]]
"""InvokeEndpointAsync: (endpoint, scope, receive, request id) -> the 202 answer."""


def parse_invocation_path(raw_path: bytes) -> tuple[str, str] | None:
    """(endpoint name, action) for `.../endpoints/{name}/{action}`, decoding the name once
    (botocore percent-encodes it, so `/` inside a name arrives as %2F)."""
    parts = raw_path.split(b"/")
    if len(parts) < 4 or parts[-3] != b"endpoints":
        return None
    return unquote(parts[-2].decode("latin-1")), parts[-1].decode("latin-1")


def _constraint(value: str, member: str, rule: str) -> ValidationError:
    return ValidationError(
        f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy "
        f"constraint: {rule}"
    )


# Names already found valid (a name's validity never changes; bounded): a set lookup
# instead of a regular expression on every invocation.
_VALID_NAMES: set[str] = set()
_VALID_NAMES_MAX = 4096


def validate_runtime_name(value: str, member: str) -> None:
    if value in _VALID_NAMES:
        return
    problem = runtime_name_error(value, member)
    if problem is not None:
        raise ValidationError(problem)
    if len(_VALID_NAMES) < _VALID_NAMES_MAX:
        _VALID_NAMES.add(value)


def check_headers(headers: dict[bytes, bytes]) -> None:
    """SageMaker's length and ASCII rules for the headers it models."""
    for name, member, max_len in _CHECKED:
        value = headers.get(name)
        if value is None:
            continue
        if len(value) > max_len:
            raise _constraint(
                value[:80].decode("latin-1") + "...",
                member,
                f"Member must have length less than or equal to {max_len}",
            )
        if not value.isascii():
            raise _constraint(value.decode("latin-1"), member, "Member must contain only ASCII")


def sync_invocation_headers(
    name: str, scope: Scope, is_async: Callable[[str], bool], max_payload_bytes: int
) -> dict[bytes, bytes]:
    """The checks every synchronous invocation (InvokeEndpoint and its response stream)
    makes before reading the body: the endpoint's name, no async endpoint, and the
    headers SageMaker models. Returns the headers as a dict."""
    return checked_headers(name, scope["headers"], is_async, max_payload_bytes)


def checked_headers(
    name: str,
    raw_headers: list[tuple[bytes, bytes]],
    is_async: Callable[[str], bool],
    max_payload_bytes: int,
) -> dict[bytes, bytes]:
    """`sync_invocation_headers` on the raw header pairs (the fast path has no scope)."""
    validate_runtime_name(name, "endpointName")
    if is_async(name):
        raise ValidationError(
            f"Endpoint {name} is an asynchronous endpoint (AsyncInferenceConfig); invoke "
            "it with InvokeEndpointAsync."
        )
    headers = dict(raw_headers)
    check_content_length(headers, max_payload_bytes)
    check_headers(headers)
    return headers


class RuntimeAPI:
    """Serves InvokeEndpoint over HTTP; the data plane does the rest."""

    def __init__(
        self,
        plane: DataPlane,
        max_payload_bytes: int,
        account_id: str,
        invoke_async: AsyncHandler | None = None,
        is_async: Callable[[str], bool] = lambda _name: False,
        stream: ASGIApp | None = None,
    ) -> None:
        self.plane = plane
        self.stream = stream  # InvokeEndpointWithResponseStream (gateway/stream_api.py)
        self.max_payload_bytes = max_payload_bytes
        self.account_id = account_id
        self.invoke_async = invoke_async
        self.is_async = is_async

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path") or scope["path"].encode()
        if self.stream is not None and raw.endswith(_STREAM):
            await self.stream(scope, receive, send)
            return
        request_id = new_request_id()
        shadow_jobs: list[ShadowJob] = []
        try:
            status, headers, body = await self._invoke(scope, receive, request_id, shadow_jobs)
        except Exception as exc:
            status, headers, body = error_payload(exc, request_id, "application/json")
        await respond(send, status, headers, body)
        # The production answer is sent; the shadow copies start only now.
        for job in shadow_jobs:
            self.plane.shadows.start(job)

    async def _invoke(
        self, scope: Scope, receive: Receive, request_id: str, shadow_jobs: list[ShadowJob]
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        started = time.perf_counter()
        parsed = parse_invocation_path(scope.get("raw_path") or scope["path"].encode())
        assert parsed is not None  # the dispatcher only routes matching paths here
        name, action = parsed
        if action == "async-invocations" and self.invoke_async is not None:
            validate_runtime_name(name, "endpointName")
            self.plane.route(name, self.account_id)  # unknown or not InService: refused
            return await self.invoke_async(name, scope, receive, request_id)
        if action != "invocations":
            raise ValidationError(
                f"{action} is not supported by this modelhost version; use "
                "POST /endpoints/{EndpointName}/invocations."
            )
        raw_headers = scope["headers"]
        headers = checked_headers(name, raw_headers, self.is_async, self.max_payload_bytes)
        body = await read_body(receive, self.max_payload_bytes)
        return await self.invoke_read(
            name, raw_headers, headers, body, started, request_id, shadow_jobs
        )

    async def invoke_read(
        self,
        name: str,
        raw_headers: list[tuple[bytes, bytes]],
        headers: dict[bytes, bytes],
        body: bytes,
        started: float,
        request_id: str,
        shadow_jobs: list[ShadowJob],
    ) -> Answer:
        """InvokeEndpoint once its headers passed `checked_headers` and its body is read:
        the route, the body and target checks, then the data plane. The ASGI path and the
        protocol-level fast path (gateway/fastpath.py) both end here."""
        route = self.plane.route(name, self.account_id)
        if not body:
            raise ValidationError(
                "1 validation error detected: Value at 'body' failed to satisfy constraint: "
                "Member must not be empty"
            )
        raw_model = headers.get(TARGET_MODEL)
        target_model = None
        if raw_model is not None:
            target_model = validate_target_model(raw_model.decode("latin-1"))
        raw_variant = headers.get(_TARGET_VARIANT)
        target_variant = None
        if raw_variant is not None:
            target_variant = raw_variant.decode("latin-1")
            validate_runtime_name(target_variant, "targetVariant")
        request = Invocation(
            endpoint=name,
            headers=headers,
            forward=[(k, v) for k, v in raw_headers if k in _FORWARD],
            body=body,
            target_model=target_model,
            target_variant=target_variant,
            started_s=started,
            request_id=request_id,
        )
        return await self.plane.invoke(route, request, shadow_jobs)
