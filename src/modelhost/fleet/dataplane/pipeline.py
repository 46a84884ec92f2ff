"""Multi-container variants: direct invocation and serial inference pipelines.

One container group (one instance, fleet/multicontainer.py) serves the whole invocation:

- `Direct`: `TargetContainerHostname` is required and names the one container that
  answers. As SageMaker documents, a missing or unknown host name is a ValidationError,
  and so is a host name sent to an endpoint that is not configured for direct invocation.
- `Serial`: every container runs in model order. Each container gets the previous
  container's answer as its body, with that answer's Content-Type as its Content-Type
  (the Accept it was sent, when a container names no type); the client's Accept, custom
  attributes and inference id go to every container. The last container's answer is the
  response. A container that answers 4xx/5xx ends the pipeline (the caller raises
  ModelError naming it).

Only the first container being unreachable is retried on another instance: after that,
part of the pipeline has run. Per-container series are recorded here
(telemetry/container_metrics.py); the variant-level series by the caller.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from modelhost.errors import ServiceUnavailable, ValidationError
from modelhost.fleet.dataplane.core import Headers, Invoker, Reply, Sent
from modelhost.fleet.http1 import InstanceDisconnected, InstanceUnreachable
from modelhost.fleet.instance import Instance
from modelhost.fleet.multicontainer import ContainerGroup, GroupLaunchSpec
from modelhost.resources.containers import ExecutionMode
from modelhost.resources.names import runtime_name_error
from modelhost.routing.choose import pick_instance
from modelhost.routing.table import Target, VariantRoute

if TYPE_CHECKING:
    from modelhost.telemetry.container_metrics import ContainerMetrics

TARGET_HOST = b"x-amzn-sagemaker-target-container-hostname"
# Client headers every container receives (Content-Type is set per step).
_PASS = (b"accept", b"x-amzn-sagemaker-custom-attributes", b"x-amzn-sagemaker-inference-id")


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
    hosts = spec.hostnames
    if spec.mode == ExecutionMode.DIRECT:
        if target is None:
            raise ValidationError(
                f"Endpoint {endpoint} is a multi-container endpoint with direct invocation: "
                f"specify TargetContainerHostname (one of {', '.join(hosts)})."
            )
        host = target.decode("latin-1")
        problem = runtime_name_error(host, "targetContainerHostname")
        if problem is not None:
            raise ValidationError(problem)
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
    """Runs one invocation on one container group of a multi-container variant."""

    def __init__(self, core: Invoker, metrics: ContainerMetrics) -> None:
        self.core = core
        self.metrics = metrics

    async def invoke(
        self,
        endpoint: str,
        variant: VariantRoute,
        headers: dict[bytes, bytes],
        body: bytes,
    ) -> Sent:
        spec = group_spec(variant)
        assert spec is not None  # the variant's instances are container groups
        hosts = containers_to_run(endpoint, spec, headers.get(TARGET_HOST))
        instances, rand = variant.instances, self.core.rand

        def pick(tried: frozenset[str]) -> Target | None:
            return pick_instance(instances, rand, tried)

        async def attempt(instance: Instance) -> Sent:
            assert isinstance(instance, ContainerGroup)
            return await self._run(endpoint, variant.name, instance, hosts, headers, body)

        return await self.core.run(endpoint, variant.name, pick, attempt)

    async def _run(
        self,
        endpoint: str,
        variant: str,
        group: ContainerGroup,
        hosts: tuple[str, ...],
        headers: dict[bytes, bytes],
        body: bytes,
    ) -> Sent:
        base = [(k, headers[k]) for k in _PASS if k in headers]
        if len(hosts) == 1 and TARGET_HOST in headers:
            base.append((TARGET_HOST, headers[TARGET_HOST]))
        accept = headers.get(b"accept")
        content_type = headers.get(b"content-type")
        deadline = time.perf_counter() + self.core.timeout_s
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
            except (InstanceUnreachable, InstanceDisconnected) as exc:
                if step == 0 and isinstance(exc, InstanceUnreachable):
                    raise  # nothing ran yet: the core tries another instance
                self.core.health.report_unreachable(endpoint, group)
                what = (
                    "could not be reached; retry the request"
                    if isinstance(exc, InstanceUnreachable)
                    else "stopped while serving the request; retry it"
                )
                raise ServiceUnavailable(
                    f"Container {host} of instance {group.instance_id} (variant {variant}) {what}."
                ) from exc
            except TimeoutError as exc:
                self.metrics.series(endpoint, variant, host).record(
                    status=0, latency_us=(time.perf_counter() - sent) * 1e6
                )
                raise self.core.timed_out(endpoint, host, member.log_path) from exc
            latency_us = (time.perf_counter() - sent) * 1e6
            model_us += latency_us
            self.metrics.series(endpoint, variant, host).record(
                status=status, latency_us=latency_us
            )
            if status >= 400:
                return Sent(status, out_headers, out, group, model_us, host, member.log_path)
            # SageMaker chains by content type: the answer's type is the next request's.
            content_type = out_headers.get(b"content-type") or accept
        last = group.member(hosts[-1])
        log_path = last.log_path if last is not None else group.log_path
        return Sent(status, out_headers, out, group, model_us, hosts[-1], log_path)

    async def _send(self, member: Instance, fwd: Headers, body: bytes, deadline: float) -> Reply:
        def timeout_s() -> float:
            return max(deadline - time.perf_counter(), 0.001)

        try:
            return await self.core.post(member, b"/invocations", fwd, body, timeout_s())
        except InstanceDisconnected:
            if not self.core.health.is_alive(member):
                raise
            # Alive: most likely an idle keep-alive connection closed under us before the
            # request was read; one more attempt is safe (as on the single-model path).
            return await self.core.post(member, b"/invocations", fwd, body, timeout_s())
