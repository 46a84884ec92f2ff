"""The runtime API: `POST /endpoints/{EndpointName}/invocations` (sagemaker-runtime).

Hot path, written as a raw ASGI callable: validate headers at the edge, pick a variant
and an instance from the current routing snapshot, forward over a keep-alive connection,
and map the instance's answer to SageMaker's runtime contract.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import unquote

from modelhost.errors import (
    ModelError,
    ServiceUnavailable,
    ValidationError,
    ValidationException,
)
from modelhost.fleet.http1 import InstanceDisconnected, InstanceUnreachable
from modelhost.gateway.asgi import Receive, Scope, Send, check_content_length, read_body, respond
from modelhost.gateway.errors import error_payload
from modelhost.gateway.multimodel import TARGET_MODEL, MultiModelInvoker, validate_target_model
from modelhost.gateway.pipeline import MultiContainerInvoker, group_spec
from modelhost.resources.names import RUNTIME_NAME_RE
from modelhost.routing.choose import choose_variant, pick_instance
from modelhost.routing.table import ShadowRoute
from modelhost.store.locations import resolve_target_model
from modelhost.telemetry import shadow_report

if TYPE_CHECKING:
    from modelhost.control.controller import Controller
    from modelhost.fleet.instance import Instance
    from modelhost.telemetry.metrics import InvocationMetrics

# Request headers passed through to the container (SageMaker drops all others).
_FORWARD = (
    b"content-type",
    b"accept",
    b"x-amzn-sagemaker-custom-attributes",
    b"x-amzn-sagemaker-inference-id",
    b"x-amzn-sagemaker-target-variant",
)
_MAX_ORIGINAL_MESSAGE = 4096
# Shadow copies in flight at most; beyond that a copy is dropped, never queued.
SHADOW_MAX_IN_FLIGHT = 64

log = logging.getLogger("modelhost.gateway")

ShadowJob = Callable[[], Awaitable[None]]


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


def validate_runtime_name(value: str, member: str) -> None:
    if len(value) > 63:
        raise _constraint(value, member, "Member must have length less than or equal to 63")
    if not RUNTIME_NAME_RE.match(value):
        raise _constraint(
            value,
            member,
            "Member must satisfy regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9])*",
        )


def _inference_id(headers: dict[bytes, bytes]) -> str:
    """The caller's InferenceId, or a fresh one (shadow pairs and bandit rewards need one)."""
    given = headers.get(b"x-amzn-sagemaker-inference-id")
    return given.decode("latin-1") if given is not None else str(uuid.uuid4())


def _check_header(headers: dict[bytes, bytes], name: bytes, member: str, max_len: int) -> None:
    value = headers.get(name)
    if value is None:
        return
    if len(value) > max_len:
        raise _constraint(
            value[:80].decode("latin-1") + "...",
            member,
            f"Member must have length less than or equal to {max_len}",
        )
    if not value.isascii():
        raise _constraint(value.decode("latin-1"), member, "Member must contain only ASCII")


class RuntimeAPI:
    """Serves InvokeEndpoint; the routing snapshot comes from the controller."""

    def __init__(
        self,
        controller: Controller,
        metrics: InvocationMetrics,
        max_payload_bytes: int,
        timeout_s: float,
        account_id: str,
        region: str,
    ) -> None:
        self.controller = controller
        self.metrics = metrics
        self.max_payload_bytes = max_payload_bytes
        self.timeout_s = timeout_s
        self.account_id = account_id
        self.region = region
        # Running shadow copies, held so they are not garbage collected mid-flight.
        self.shadow_tasks: set[asyncio.Task[None]] = set()
        self.shadow_dropped = 0
        self.multi_container = MultiContainerInvoker(self)
        self.multi_model = MultiModelInvoker(
            controller, metrics.models, timeout_s, self._log_stream
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = str(uuid.uuid4())
        shadow_jobs: list[ShadowJob] = []
        try:
            status, headers, body = await self._invoke(scope, receive, request_id, shadow_jobs)
        except Exception as exc:
            status, headers, body = error_payload(exc, request_id, "application/json")
        await respond(send, status, headers, body)
        # The production answer is sent; the shadow copies start only now.
        for job in shadow_jobs:
            self._start_shadow(job)

    def _start_shadow(self, job: ShadowJob) -> None:
        if len(self.shadow_tasks) >= SHADOW_MAX_IN_FLIGHT:
            self.shadow_dropped += 1
            return
        task = asyncio.ensure_future(job())
        self.shadow_tasks.add(task)
        task.add_done_callback(self.shadow_tasks.discard)

    def _shadow_jobs(
        self,
        endpoint: str,
        shadows: tuple[ShadowRoute, ...],
        fwd: list[tuple[bytes, bytes]],
        body: bytes,
        inference_id: str,
        production: dict[str, object],
    ) -> list[ShadowJob]:
        jobs: list[ShadowJob] = []
        for shadow in shadows:
            if not shadow.instances or self.controller.rand() >= shadow.share:
                continue

            async def job(shadow: ShadowRoute = shadow) -> None:
                try:
                    await self._mirror(endpoint, shadow, fwd, body, inference_id, production)
                except Exception:
                    log.exception("shadow copy to %s/%s failed", endpoint, shadow.name)

            jobs.append(job)
        return jobs

    async def _mirror(
        self,
        endpoint: str,
        shadow: ShadowRoute,
        fwd: list[tuple[bytes, bytes]],
        body: bytes,
        inference_id: str,
        production: dict[str, object],
    ) -> None:
        """Send the copy to one shadow instance; record its metrics and the pair."""
        status: int | None = None
        out = b""
        content_type: str | None = None
        started = time.perf_counter()
        inst = pick_instance(shadow.instances, self.controller.rand)
        if inst is not None:
            instance: Instance = inst  # type: ignore[assignment]
            instance.outstanding += 1
            try:
                status, out_headers, out = await self.controller.client.http.request(
                    instance.port, b"POST", b"/invocations", fwd, body, self.timeout_s
                )
                ctype = out_headers.get(b"content-type")
                content_type = ctype.decode("latin-1") if ctype is not None else None
            except InstanceUnreachable:
                self.controller.report_unreachable(endpoint, instance)
            except (InstanceDisconnected, TimeoutError):
                pass
            finally:
                instance.outstanding -= 1
        latency_us = (time.perf_counter() - started) * 1e6
        if status is not None:
            self.metrics.series(endpoint, shadow.name).record(
                status=status,
                instances=len(shadow.instances),
                model_us=latency_us,
                total_us=latency_us,
            )
        now = time.time()
        record = {
            "inference_id": inference_id,
            "time": now,
            "production": production,
            "shadow": shadow_report.side(shadow.name, status, latency_us, content_type, out),
        }
        shadow_report.append_pair(
            shadow_report.capture_path(self.controller.settings.home, endpoint, shadow.name, now),
            record,
        )

    async def _invoke(
        self, scope: Scope, receive: Receive, request_id: str, shadow_jobs: list[ShadowJob]
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        started = time.perf_counter()
        parsed = parse_invocation_path(scope.get("raw_path") or scope["path"].encode())
        assert parsed is not None  # the dispatcher only routes matching paths here
        name, action = parsed
        if action != "invocations":
            raise ValidationError(
                f"{action} is not supported by this modelhost version; use "
                "POST /endpoints/{EndpointName}/invocations."
            )
        validate_runtime_name(name, "endpointName")
        headers = dict(scope["headers"])
        check_content_length(headers, self.max_payload_bytes)
        _check_header(headers, b"content-type", "contentType", 1024)
        _check_header(headers, b"accept", "accept", 1024)
        _check_header(headers, b"x-amzn-sagemaker-custom-attributes", "customAttributes", 1024)
        _check_header(headers, b"x-amzn-sagemaker-inference-id", "inferenceId", 64)
        body = await read_body(receive, self.max_payload_bytes)

        route = self.controller.table.endpoints.get(name)
        if route is None:
            raise ValidationError(f"Endpoint {name} of account {self.account_id} not found.")
        if route.unavailable_reason:
            raise ValidationError(route.unavailable_reason)
        if not body:
            raise ValidationError(
                "1 validation error detected: Value at 'body' failed to satisfy constraint: "
                "Member must not be empty"
            )
        target_model = headers.get(TARGET_MODEL)
        if target_model is not None:
            validate_target_model(target_model.decode("latin-1"))
            try:  # a TargetModel must stay inside its endpoint's model prefix
                resolve_target_model("", target_model.decode("latin-1"))
            except ValidationException as exc:
                raise ValidationError(exc.message) from exc

        target = headers.get(b"x-amzn-sagemaker-target-variant")
        rand = self.controller.rand
        if target is not None:
            target_name = target.decode("latin-1")
            validate_runtime_name(target_name, "targetVariant")
            variant = route.variant(target_name)
            if variant is None:
                raise ValidationError(f"Variant {target_name} not found for endpoint {name}.")
        else:
            variant = choose_variant(route.variants, rand)
        if variant is None or not variant.instances:
            raise ServiceUnavailable(
                f"Endpoint {name} has no healthy instance right now; retry shortly."
            )
        multi = group_spec(variant)
        if multi is not None:
            answer = await self.multi_container.invoke(
                name, variant, multi, headers, body, started, request_id
            )
            multi_bandit = self.controller.bandits.get(name)
            if multi_bandit is not None:
                multi_id = _inference_id(headers)
                multi_bandit.observe(multi_id, variant.name)
                answer[1].append((b"x-modelhost-inference-id", multi_id.encode()))
            return answer
        if b"x-amzn-sagemaker-target-container-hostname" in headers:
            raise ValidationError(
                f"Endpoint {name} is not a multi-container endpoint; remove "
                "TargetContainerHostname."
            )
        if (variant.model_data_prefix is None) != (target_model is None):
            raise ValidationError(
                f"Endpoint {name} is a multi-model endpoint; give TargetModel (the artifact "
                "under the model's ModelDataUrl prefix, e.g. model.tar.gz)."
                if target_model is None
                else f"Endpoint {name} is not a multi-model endpoint; remove TargetModel."
            )

        fwd = [(k, v) for k, v in scope["headers"] if k in _FORWARD]
        tried: set[str] = set()
        stale_retry = True
        instance: Instance
        if target_model is not None:
            sent = await self.multi_model.invoke(
                name, variant, target_model.decode("latin-1"), fwd, body
            )
            status, out_headers, out = sent.status, sent.headers, sent.body
            instance, model_started = sent.instance, sent.model_started_s
        # Single-model variants: least outstanding requests, retried on unreachable ones.
        while target_model is None:
            inst = pick_instance(variant.instances, rand, frozenset(tried))
            if inst is None:
                raise ServiceUnavailable(
                    f"No instance of variant {variant.name} of endpoint {name} could be "
                    "reached; retry shortly."
                )
            tried.add(inst.instance_id)
            instance = inst  # type: ignore[assignment]
            model_started = time.perf_counter()
            instance.outstanding += 1
            try:
                status, out_headers, out = await self.controller.client.http.request(
                    instance.port, b"POST", b"/invocations", fwd, body, self.timeout_s
                )
            except InstanceUnreachable:
                # Never reached the instance: safe to send elsewhere.
                self.controller.report_unreachable(name, instance)
                continue
            except InstanceDisconnected as exc:
                if stale_retry and self.controller.provider.exit_code(instance) is None:
                    # Alive: most likely a keep-alive connection closed under us before
                    # the request was read; one more attempt (on any instance) is safe.
                    stale_retry = False
                    tried.discard(instance.instance_id)
                    continue
                self.controller.report_unreachable(name, instance)
                raise ServiceUnavailable(
                    f"Instance {instance.instance_id} of variant {variant.name} stopped "
                    f"while serving the request ({type(exc).__name__}); retry it."
                ) from exc
            except TimeoutError as exc:
                raise ModelError(
                    'Received server error (0) from primary with message "Your invocation '
                    'timed out while waiting for a response from container primary."',
                    0,
                    f"Invocation timed out after {self.timeout_s:g} s",
                    self._log_stream(name),
                ) from exc
            finally:
                instance.outstanding -= 1
            break

        now = time.perf_counter()
        self.metrics.series(name, variant.name).record(
            status=status,
            instances=len(variant.instances),
            model_us=(now - model_started) * 1e6,
            total_us=(now - started) * 1e6,
        )
        bandit = self.controller.bandits.get(name)
        inference_id = ""
        if route.shadows or bandit is not None:
            inference_id = _inference_id(headers)
        if bandit is not None:
            # Remember who answered, so a reward for this id credits the right variant.
            bandit.observe(inference_id, variant.name)
        if route.shadows:
            ctype = out_headers.get(b"content-type")
            production = shadow_report.side(
                variant.name,
                status,
                (now - model_started) * 1e6,
                ctype.decode("latin-1") if ctype is not None else None,
                out,
            )
            shadow_jobs.extend(
                self._shadow_jobs(name, route.shadows, fwd, body, inference_id, production)
            )
        if status >= 400:
            message = out[:_MAX_ORIGINAL_MESSAGE].decode("utf-8", "replace")
            kind = "client" if status < 500 else "server"
            raise ModelError(
                f'Received {kind} error ({status}) from primary with message "{message}". '
                f"See {instance.log_path} for more information.",
                status,
                message,
                self._log_stream(name),
            )
        if len(out) > self.max_payload_bytes:
            raise ModelError(
                f"The model's response of {len(out)} bytes exceeds the "
                f"{self.max_payload_bytes}-byte limit.",
                status,
                "response too large",
                self._log_stream(name),
            )
        resp_headers = [
            (b"content-type", out_headers.get(b"content-type", b"application/octet-stream")),
            (b"x-amzn-invoked-production-variant", variant.name.encode()),
            (b"x-amzn-requestid", request_id.encode()),
            (b"content-length", str(len(out)).encode()),
        ]
        if bandit is not None:
            resp_headers.append((b"x-modelhost-inference-id", inference_id.encode()))
        custom = out_headers.get(b"x-amzn-sagemaker-custom-attributes")
        if custom is not None:
            resp_headers.append((b"x-amzn-sagemaker-custom-attributes", custom))
        return status, resp_headers, out

    def _log_stream(self, endpoint: str) -> str:
        return (
            f"arn:aws:logs:{self.region}:{self.account_id}:log-group:"
            f"/aws/sagemaker/Endpoints/{endpoint}"
        )
