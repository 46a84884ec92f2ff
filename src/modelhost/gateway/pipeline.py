"""InvokeEndpoint for multi-container variants: direct invocation and serial pipelines.

The runtime API hands a request here once it has chosen a variant whose instances are
container groups (fleet/multicontainer.py). One group (one instance) serves the whole
invocation:

- `Direct`: `TargetContainerHostname` is required and names the one container that
  answers. As SageMaker documents, a missing or unknown host name is a ValidationError,
  and so is a host name sent to an endpoint that is not configured for direct invocation.
- `Serial`: every container runs in model order. Each container gets the previous
  container's answer as its body, with that answer's Content-Type as its Content-Type
  (the Accept it was sent, when a container names no type); the client's Accept, custom
  attributes and inference id go to every container. The last container's answer is the
  response. A container that answers 4xx/5xx ends the pipeline with ModelError naming it.

Metrics: the variant-level series as for any endpoint (ModelLatency spans the containers
that ran), plus per-container series (telemetry/container_metrics.py).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from modelhost.errors import ModelError, ServiceUnavailable, ValidationError
from modelhost.fleet.http1 import InstanceDisconnected, InstanceUnreachable
from modelhost.fleet.multicontainer import ContainerGroup, GroupLaunchSpec
from modelhost.resources.containers import ExecutionMode
from modelhost.routing.choose import pick_instance

if TYPE_CHECKING:
    from modelhost.fleet.instance import Instance
    from modelhost.gateway.runtime_api import RuntimeAPI
    from modelhost.routing.table import VariantRoute

TARGET_HOST = b"x-amzn-sagemaker-target-container-hostname"
# Client headers every container receives (Content-Type is set per step).
_PASS = (b"accept", b"x-amzn-sagemaker-custom-attributes", b"x-amzn-sagemaker-inference-id")
_MAX_ORIGINAL_MESSAGE = 4096

Response = tuple[int, list[tuple[bytes, bytes]], bytes]


def group_spec(variant: VariantRoute) -> GroupLaunchSpec | None:
    """The variant's multi-container launch spec, or None for a single-container variant
    (all instances of a variant share one spec, so the first one tells)."""
    if not variant.instances:
        return None
    inst = variant.instances[0]
    if isinstance(inst, ContainerGroup) and isinstance(inst.spec, GroupLaunchSpec):
        return inst.spec
    return None


def containers_to_run(
    endpoint: str, spec: GroupLaunchSpec, target: bytes | None
) -> tuple[str, ...]:
    """The host names this invocation runs, in order; ValidationError for a bad target."""
    from modelhost.gateway.runtime_api import validate_runtime_name

    hosts = spec.hostnames
    if spec.mode == ExecutionMode.DIRECT:
        if target is None:
            raise ValidationError(
                f"Endpoint {endpoint} is a multi-container endpoint with direct invocation: "
                f"specify TargetContainerHostname (one of {', '.join(hosts)})."
            )
        host = target.decode("latin-1")
        validate_runtime_name(host, "targetContainerHostname")
        if host not in hosts:
            raise ValidationError(
                f"TargetContainerHostname {host} was not found in endpoint {endpoint}; its "
                f"containers are {', '.join(hosts)}."
            )
        return (host,)
    if target is not None:
        raise ValidationError(
            f"Endpoint {endpoint} is not configured for direct invocation (its containers "
            "run as a Serial inference pipeline); remove TargetContainerHostname."
        )
    return hosts


class MultiContainerInvoker:
    """Runs one invocation on one container group; shares the runtime API's pool,
    metrics and limits."""

    def __init__(self, api: RuntimeAPI) -> None:
        self.api = api

    async def invoke(
        self,
        endpoint: str,
        variant: VariantRoute,
        spec: GroupLaunchSpec,
        headers: dict[bytes, bytes],
        body: bytes,
        started: float,
        request_id: str,
    ) -> Response:
        api = self.api
        hosts = containers_to_run(endpoint, spec, headers.get(TARGET_HOST))
        tried: set[str] = set()
        while True:
            inst = pick_instance(variant.instances, api.controller.rand, frozenset(tried))
            if inst is None:
                raise ServiceUnavailable(
                    f"No instance of variant {variant.name} of endpoint {endpoint} could be "
                    "reached; retry shortly."
                )
            tried.add(inst.instance_id)
            group: ContainerGroup = inst  # type: ignore[assignment]
            group.outstanding += 1
            try:
                result = await self._run(endpoint, variant, group, hosts, headers, body)
            except _Retry:
                continue
            finally:
                group.outstanding -= 1
            break
        status, out_headers, out, model_us, host = result
        now = time.perf_counter()
        api.metrics.series(endpoint, variant.name).record(
            status=status,
            instances=len(variant.instances),
            model_us=model_us,
            total_us=(now - started) * 1e6,
        )
        if status >= 400:
            message = out[:_MAX_ORIGINAL_MESSAGE].decode("utf-8", "replace")
            kind = "client" if status < 500 else "server"
            member = group.member(host)
            where = member.log_path if member is not None else group.log_path
            raise ModelError(
                f'Received {kind} error ({status}) from {host} with message "{message}". '
                f"See {where} for more information.",
                status,
                message,
                api._log_stream(endpoint),
            )
        if len(out) > api.max_payload_bytes:
            raise ModelError(
                f"The model's response of {len(out)} bytes exceeds the "
                f"{api.max_payload_bytes}-byte limit.",
                status,
                "response too large",
                api._log_stream(endpoint),
            )
        resp_headers = [
            (b"content-type", out_headers.get(b"content-type", b"application/octet-stream")),
            (b"x-amzn-invoked-production-variant", variant.name.encode()),
            (b"x-amzn-requestid", request_id.encode()),
            (b"content-length", str(len(out)).encode()),
        ]
        custom = out_headers.get(b"x-amzn-sagemaker-custom-attributes")
        if custom is not None:
            resp_headers.append((b"x-amzn-sagemaker-custom-attributes", custom))
        return status, resp_headers, out

    async def _run(
        self,
        endpoint: str,
        variant: VariantRoute,
        group: ContainerGroup,
        hosts: tuple[str, ...],
        headers: dict[bytes, bytes],
        body: bytes,
    ) -> tuple[int, dict[bytes, bytes], bytes, float, str]:
        """(status, headers, body, model µs, host of the last container that ran)."""
        api = self.api
        base = [(k, headers[k]) for k in _PASS if k in headers]
        if len(hosts) == 1 and TARGET_HOST in headers:
            base.append((TARGET_HOST, headers[TARGET_HOST]))
        accept = headers.get(b"accept")
        content_type = headers.get(b"content-type")
        deadline = time.perf_counter() + api.timeout_s
        model_us = 0.0
        status, out = 0, body
        out_headers: dict[bytes, bytes] = {}
        for step, host in enumerate(hosts):
            member = group.member(host)
            assert member is not None
            fwd = list(base)
            if content_type is not None:
                fwd.append((b"content-type", content_type))
            sent = time.perf_counter()
            try:
                status, out_headers, out = await self._send(member, fwd, out, deadline)
            except InstanceUnreachable as exc:
                api.controller.report_unreachable(endpoint, group)
                if step == 0:
                    raise _Retry from exc  # nothing ran yet: another instance may serve it
                raise ServiceUnavailable(
                    f"Container {host} of instance {group.instance_id} (variant "
                    f"{variant.name}) could not be reached; retry the request."
                ) from exc
            except InstanceDisconnected as exc:
                api.controller.report_unreachable(endpoint, group)
                raise ServiceUnavailable(
                    f"Container {host} of instance {group.instance_id} (variant "
                    f"{variant.name}) stopped while serving the request; retry it."
                ) from exc
            except TimeoutError as exc:
                api.metrics.containers.series(endpoint, variant.name, host).record(
                    status=0, latency_us=(time.perf_counter() - sent) * 1e6
                )
                raise ModelError(
                    f'Received server error (0) from {host} with message "Your invocation '
                    f'timed out while waiting for a response from container {host}."',
                    0,
                    f"Invocation timed out after {api.timeout_s:g} s",
                    api._log_stream(endpoint),
                ) from exc
            latency_us = (time.perf_counter() - sent) * 1e6
            model_us += latency_us
            api.metrics.containers.series(endpoint, variant.name, host).record(
                status=status, latency_us=latency_us
            )
            if status >= 400:
                return status, out_headers, out, model_us, host
            # SageMaker chains by content type: the answer's type is the next request's.
            content_type = out_headers.get(b"content-type") or accept
        return status, out_headers, out, model_us, hosts[-1]

    async def _send(
        self, member: Instance, fwd: list[tuple[bytes, bytes]], body: bytes, deadline: float
    ) -> tuple[int, dict[bytes, bytes], bytes]:
        http = self.api.controller.client.http

        def timeout_s() -> float:
            return max(deadline - time.perf_counter(), 0.001)

        try:
            return await http.request(member.port, b"POST", b"/invocations", fwd, body, timeout_s())
        except InstanceDisconnected:
            if self.api.controller.provider.exit_code(member) is not None:
                raise
            # Alive: most likely an idle keep-alive connection closed under us before the
            # request was read; one more attempt is safe (as on the single-container path).
            return await http.request(member.port, b"POST", b"/invocations", fwd, body, timeout_s())


class _Retry(Exception):
    """The first container of the chosen instance was unreachable; try another."""
