"""Serverless variants: one invocation per instance, from zero.

The instance comes from the injected `ServerlessCapacity` (the serverless pool in
`scaling/`), which may start it for this very request; the routing snapshot's instance
list is not used, since a serverless variant may have none while idle. An instance that
dies in the middle of an invocation most likely went over its memory limit
(MemorySizeInMB): the caller gets a ModelError saying so, and the next request gets a
fresh instance.
"""

from __future__ import annotations

import time

from modelhost.errors import ModelError, ServiceUnavailable
from modelhost.fleet.dataplane.core import Headers, Invoker, Sent
from modelhost.fleet.dataplane.ports import ServerlessCapacity
from modelhost.fleet.instance import Instance
from modelhost.routing.table import Target, VariantRoute


class ServerlessInvoker:
    """Sends one invocation of a serverless variant to an instance reserved for it."""

    def __init__(self, core: Invoker, capacity: ServerlessCapacity) -> None:
        self.core = core
        self.capacity = capacity

    async def invoke(
        self, endpoint: str, variant: VariantRoute, forward: Headers, body: bytes
    ) -> Sent:
        core = self.core
        # Waiting for a cold start counts against the invocation timeout, as in SageMaker.
        started = time.perf_counter()
        instance = await self.capacity.acquire(endpoint, variant.name, core.timeout_s)
        remaining_s = max(core.timeout_s - (time.perf_counter() - started), 0.001)

        def pick(tried: frozenset[str]) -> Target | None:
            return None if instance.instance_id in tried else instance

        async def attempt(inst: Instance) -> Sent:
            sent = time.perf_counter()
            status, headers, out = await core.post(
                inst, b"/invocations", forward, body, remaining_s
            )
            return Sent(status, headers, out, inst, (time.perf_counter() - sent) * 1e6)

        try:
            return await core.run(endpoint, variant.name, pick, attempt)
        except ServiceUnavailable as exc:
            if core.health.is_alive(instance):
                raise
            raise self.exited(endpoint, variant, instance) from exc
        finally:
            await self.capacity.release(endpoint, variant.name, instance)

    def exited(self, endpoint: str, variant: VariantRoute, instance: Instance) -> ModelError:
        """The error for an instance that died serving a request (its memory limit, most
        likely)."""
        limit = instance.spec.memory_limit_bytes
        return ModelError(
            f"The serverless instance {instance.instance_id} of variant {variant.name} "
            "exited while serving the request"
            + (
                f"; it most likely exceeded its memory limit (MemorySizeInMB "
                f"{limit // (1024 * 1024)})"
                if limit
                else ""
            )
            + f". See {instance.log_path} for more information.",
            500,
            "instance exited",
            self.core.log_stream(endpoint, instance.log_path),
        )
