"""Single-model variants: the least busy instance answers `POST /invocations`."""

from __future__ import annotations

import time

from modelhost.fleet.dataplane.core import Headers, Invoker, Sent
from modelhost.fleet.instance import Instance
from modelhost.routing.choose import pick_instance
from modelhost.routing.table import Target, VariantRoute


class SingleModelInvoker:
    """Sends one invocation to a single-model variant (least outstanding requests)."""

    def __init__(self, core: Invoker) -> None:
        self.core = core

    async def invoke(
        self, endpoint: str, variant: VariantRoute, forward: Headers, body: bytes
    ) -> Sent:
        core = self.core
        instances, rand = variant.instances, core.rand

        def pick(tried: frozenset[str]) -> Target | None:
            return pick_instance(instances, rand, tried)

        async def attempt(instance: Instance) -> Sent:
            started = time.perf_counter()
            status, headers, out = await core.post(instance, b"/invocations", forward, body)
            return Sent(status, headers, out, instance, (time.perf_counter() - started) * 1e6)

        return await core.run(endpoint, variant.name, pick, attempt)
