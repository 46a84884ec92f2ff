"""The Open Inference Protocol (V2, KServe / Triton) REST edge on every endpoint.

    GET  /v2/health/live, /v2/health/ready, /v2          the gateway (public, like /ping)
    GET  /v2/models/{name}[/versions/{v}]                 model metadata
    GET  /v2/models/{name}[/versions/{v}]/ready           200 ready, 400 not (yet)
    POST /v2/models/{name}[/versions/{v}]/infer           inference
    POST /v2/models/{name}[/versions/{v}]/generate[_stream]  text generation (v2_generate)

`{name}` is an endpoint name, or `{endpoint}/{TargetModel}` for a multi-model endpoint
(the slash may be sent as is or as %2F: tritonclient quotes model names keeping `/`, and
endpoint names cannot hold one, so the first `/` always ends the endpoint). `{v}` is a
production variant (TargetVariant); the variant that answered is the response's
`model_version`. An infer request is converted at this edge (`v2_tensors`) and sent
through the same data plane as `/invocations`: routing, variants, metrics, data capture
and shadows behave the same. Errors are V2's `{"error": "..."}`.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from urllib.parse import unquote

from modelhost import __version__
from modelhost.errors import ModelError, ModelhostError, NotFound, ValidationError
from modelhost.fleet.dataplane.plane import DataPlane, Invocation
from modelhost.fleet.dataplane.shadow import ShadowJob
from modelhost.gateway import v2_tensors
from modelhost.gateway.asgi import Receive, Scope, Send, check_content_length, read_body, respond
from modelhost.gateway.multimodel import validate_target_model
from modelhost.gateway.v2_generate import GENERATE, GENERATE_STREAM, V2Generate
from modelhost.routing.table import EndpointRoute

log = logging.getLogger("modelhost.gateway")

PREFIX = "/v2"
POST_VERBS = ("infer", GENERATE, GENERATE_STREAM)
_GENERATE_ENDS = (f"/{GENERATE}", f"/{GENERATE_STREAM}")
MODELS = "/v2/models/"
HEADER_LENGTH = b"inference-header-content-length"
# SageMaker's headers a V2 client may add (a Direct multi-container endpoint needs the last).
_PASS = (
    b"x-amzn-sagemaker-custom-attributes",
    b"x-amzn-sagemaker-inference-id",
    b"x-amzn-sagemaker-target-container-hostname",
)
SERVER_METADATA = {
    "name": "modelhost",
    "version": __version__,
    "extensions": ["binary_tensor_data", "generate"],
}


class ModelPath:
    """What a `/v2/models/...` path names."""

    def __init__(self, endpoint: str, target: str | None, version: str | None, verb: str):
        self.endpoint = endpoint
        self.target = target
        self.version = version
        self.verb = verb  # "infer", "generate", "generate_stream", "ready" or "" (metadata)

    @property
    def name(self) -> str:
        return self.endpoint if self.target is None else f"{self.endpoint}/{self.target}"


def parse_model_path(method: str, raw_path: str) -> ModelPath | None:
    """The model a `/v2/models/...` path names, or None if it is no V2 model route."""
    if not raw_path.startswith(MODELS):
        return None
    rest = raw_path[len(MODELS) :].rstrip("/")
    verb = ""
    if method == "POST":
        verb = next((v for v in POST_VERBS if rest.endswith(f"/{v}")), "")
        if not verb:
            return None
        rest = rest[: -len(verb) - 1]
    elif rest.endswith("/ready"):
        rest, verb = rest[: -len("/ready")], "ready"
    version = None
    head, sep, tail = rest.rpartition("/versions/")
    if sep and tail and "/" not in tail:
        rest, version = head, unquote(tail)
    name = unquote(rest)
    endpoint, slash, target = name.partition("/")
    if not endpoint:
        return None
    return ModelPath(endpoint, target if slash else None, version, verb)


def v2_error(exc: BaseException) -> tuple[int, bytes]:
    """(status, body) of V2's error answer: 404 for what does not exist, 400 for bad input
    and the model's own 4xx, 500 for the model's 5xx and failures, else the error's status."""
    if not isinstance(exc, ModelhostError):
        log.error("unexpected error", exc_info=exc)
        return 500, json.dumps({"error": f"internal failure ({type(exc).__name__})"}).encode()
    status = exc.status
    if isinstance(exc, ModelError):
        status = 400 if 400 <= exc.original_status_code < 500 else 500
    return status, json.dumps({"error": exc.message}).encode()


class V2API:
    """Serves the V2 REST routes over the data plane (see the module docstring)."""

    def __init__(
        self,
        plane: DataPlane,
        max_payload_bytes: int,
        account_id: str,
        is_async: Callable[[str], bool] = lambda _name: False,
        generate: V2Generate | None = None,
    ) -> None:
        self.plane = plane
        self.max_payload_bytes = max_payload_bytes
        self.account_id = account_id
        self.is_async = is_async
        self.generate = generate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        generating = scope["method"] == "POST" and scope["path"].endswith(_GENERATE_ENDS)
        if self.generate is not None and generating:
            raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
            path = parse_model_path("POST", raw_path.split("?", 1)[0])
            if path is not None and path.verb in (GENERATE, GENERATE_STREAM):
                await self._generate(self.generate, scope, receive, send, path)
                return
        shadow_jobs: list[ShadowJob] = []
        try:
            status, headers, body = await self._serve(scope, receive, shadow_jobs)
        except Exception as exc:
            status, body = v2_error(exc)
            headers = [(b"content-type", b"application/json")]
        headers.append((b"content-length", str(len(body)).encode()))
        await respond(send, status, headers, body)
        for job in shadow_jobs:  # after the answer, as the runtime API does
            self.plane.shadows.start(job)

    async def _serve(
        self, scope: Scope, receive: Receive, shadow_jobs: list[ShadowJob]
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        method = scope["method"]
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        raw_path = raw_path.split("?", 1)[0]
        if method in ("GET", "HEAD") and raw_path.rstrip("/") in (PREFIX, "/v2/health/live"):
            doc = SERVER_METADATA if raw_path.rstrip("/") == PREFIX else {"live": True}
            return _json(200, doc)
        if method in ("GET", "HEAD") and raw_path == "/v2/health/ready":
            return _json(200, {"ready": True})
        path = parse_model_path(method, raw_path)
        if path is None or (method not in ("GET", "HEAD") and path.verb != "infer"):
            raise NotFound(f"no V2 route {method} {raw_path}")
        route = self._route(path)
        if path.verb == "ready":
            ready, why = self._ready(route, path)
            return _json(200 if ready else 400, {"name": path.name, "ready": ready, **why})
        if path.verb == "":
            return _json(200, self._metadata(route, path))
        return await self._infer(scope, receive, route, path, shadow_jobs)

    async def _generate(
        self, generate: V2Generate, scope: Scope, receive: Receive, send: Send, path: ModelPath
    ) -> None:
        try:
            self._route(path)
            self._refuse_async(path.endpoint)
            streamed = await generate.open(scope, receive, path.endpoint, path.target, path.version)
        except Exception as exc:
            status, body = v2_error(exc)
            headers = [(b"content-type", b"application/json")]
            headers.append((b"content-length", str(len(body)).encode()))
            await respond(send, status, headers, body)
            return
        await generate.answer(receive, send, streamed, path.name, path.verb)

    def _refuse_async(self, endpoint: str) -> None:
        if self.is_async(endpoint):
            raise ValidationError(
                f"Endpoint {endpoint} is an asynchronous endpoint (AsyncInferenceConfig); "
                "invoke it with InvokeEndpointAsync."
            )

    def _route(self, path: ModelPath) -> EndpointRoute:
        route = self.plane.routes.table.endpoints.get(path.endpoint)
        if route is None:
            raise NotFound(f"model {path.name} not found: no endpoint {path.endpoint}")
        if path.version is not None and route.variant(path.version) is None:
            raise NotFound(
                f"model {path.name} has no version {path.version} (versions are the "
                f"endpoint's variants: {', '.join(v.name for v in route.variants)})"
            )
        multi = any(v.model_data_prefix is not None for v in route.variants)
        if path.target is not None and not multi:
            raise NotFound(
                f"model {path.name} not found: {path.endpoint} is not a multi-model endpoint"
            )
        if path.target is not None:
            validate_target_model(path.target)
        return route

    def _ready(self, route: EndpointRoute, path: ModelPath) -> tuple[bool, dict[str, str]]:
        if route.unavailable_reason:
            return False, {"reason": route.unavailable_reason}
        variants = [route.variant(path.version)] if path.version else list(route.variants)
        if any(v is not None and (v.instances or v.serverless) for v in variants):
            return True, {}
        return False, {"reason": "no healthy instance right now"}

    def _metadata(self, route: EndpointRoute, path: ModelPath) -> dict[str, object]:
        # A container declares no signature, so the tensors are described generically.
        return {
            "name": path.name,
            "versions": [v.name for v in route.variants],
            "platform": "sagemaker",
            "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, -1]}],
            "outputs": [{"name": v2_tensors.DEFAULT_OUTPUT, "datatype": "FP64", "shape": [-1]}],
        }

    async def _infer(
        self,
        scope: Scope,
        receive: Receive,
        route: EndpointRoute,
        path: ModelPath,
        shadow_jobs: list[ShadowJob],
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        started = time.perf_counter()
        self._refuse_async(path.endpoint)
        headers = dict(scope["headers"])
        check_content_length(headers, self.max_payload_bytes)
        body = await read_body(receive, self.max_payload_bytes)
        raw_length = headers.get(HEADER_LENGTH)
        if raw_length is not None and not raw_length.isdigit():
            raise ValidationError("Inference-Header-Content-Length must be a number of bytes")
        request = v2_tensors.parse_request(body, int(raw_length) if raw_length else None)
        content_type, payload = v2_tensors.to_container(request)
        sent = {b"content-type": content_type.encode()}
        accept = request.parameters.get("accept")
        if isinstance(accept, str) and accept:
            sent[b"accept"] = accept.encode()
        for name in _PASS:
            if name in headers:
                sent[name] = headers[name]
        self.plane.route(path.endpoint, self.account_id)  # not InService: refused here
        invocation = Invocation(
            endpoint=path.endpoint,
            headers=sent,
            forward=list(sent.items()),
            body=payload,
            target_model=path.target,
            target_variant=path.version,
            started_s=started,
            request_id=str(uuid.uuid4()),
        )
        _, out_headers, out = await self.plane.invoke(route, invocation, shadow_jobs)
        answered = dict(out_headers)
        array = v2_tensors.from_container(
            answered.get(b"content-type", b"").decode("latin-1"), out, v2_tensors.rows_of(request)
        )
        variant = answered.get(b"x-amzn-invoked-production-variant", b"").decode("latin-1")
        data, header_length = v2_tensors.encode_response(path.name, variant or None, request, array)
        if header_length is None:
            return 200, [(b"content-type", b"application/json")], data
        return (
            200,
            [
                (b"content-type", b"application/octet-stream"),
                (HEADER_LENGTH, str(header_length).encode()),
            ],
            data,
        )


def _json(status: int, doc: object) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    return status, [(b"content-type", b"application/json")], json.dumps(doc).encode()
