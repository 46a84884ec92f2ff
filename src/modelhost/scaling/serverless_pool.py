"""The serverless pool: the data plane's `ServerlessCapacity` over the controller's fleets.

Each serverless variant's fleet starts with its ProvisionedConcurrency instances (0 by
default). Per invocation, `acquire` admits or throttles (`admit`), hands out an idle
instance or starts one for the request (`starts_needed`) and waits for it; `release`
makes it idle again. `reap_once` (every `period_s`, in `run`) stops instances idle for
`serverless_idle_s` down to ProvisionedConcurrency (`idle_to_stop`). The decisions are
the pure functions of `scaling/serverless.py`; this module holds the state they read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from modelhost.control.deployment import Deployment
from modelhost.errors import ModelError, ModelNotReady, ServiceUnavailable, ThrottlingException
from modelhost.fleet.instance import Instance
from modelhost.fleet.variant import VariantFleet
from modelhost.resources.serverless import ServerlessConfig
from modelhost.scaling.serverless import (
    admit,
    idle_to_stop,
    provisioned_utilization,
    starts_needed,
    utilization,
)

log = logging.getLogger("modelhost.scaling")

Observe = Callable[[str, str, str, float], None]
"""(endpoint, variant, metric name, value): where the pool's metrics go."""


@dataclass
class _Pool:
    """One serverless fleet's invocation state."""

    endpoint: str
    variant: str
    config: ServerlessConfig
    in_flight: int = 0  # admitted: waiting for an instance or running
    waiting: int = 0
    starting: int = 0
    busy: set[str] = field(default_factory=set)
    last_used_s: dict[str, float] = field(default_factory=dict)
    failure: str | None = None
    cond: asyncio.Condition = field(default_factory=asyncio.Condition)


class ServerlessPool:
    """Implements `ServerlessCapacity` (fleet/dataplane/ports.py); see the module
    docstring. `deployments` is the controller's live map of running deployments (read,
    never changed); `clock` is monotonic seconds; `observe` records metrics."""

    def __init__(
        self,
        deployments: Mapping[str, Deployment],
        idle_s: float,
        observe: Observe = lambda *_a: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.deployments = deployments
        self.idle_s = idle_s
        self.observe = observe
        self.clock = clock
        self._pools: dict[VariantFleet, _Pool] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.Task[None] | None = None

    @property
    def period_s(self) -> float:
        return min(1.0, max(self.idle_s / 4, 0.05))

    def _lookup(self, endpoint: str, variant: str) -> tuple[VariantFleet, _Pool]:
        dep = self.deployments.get(endpoint)
        fleet = None if dep is None else dep.fleets.get(variant)
        spec = None if dep is None else dep.config.variant(variant)
        config = None if spec is None else spec.serverless
        if fleet is None or config is None:
            raise ServiceUnavailable(
                f"Endpoint {endpoint} has no serverless variant {variant} running; retry."
            )
        pool = self._pools.get(fleet)
        if pool is None:
            pool = self._pools[fleet] = _Pool(endpoint, variant, config)
        pool.config = config  # ServerlessUpdateConfig changes it live
        return fleet, pool

    async def acquire(self, endpoint: str, variant: str, timeout_s: float) -> Instance:
        fleet, pool = self._lookup(endpoint, variant)
        limit = pool.config.max_concurrency
        if not admit(pool.in_flight, limit):
            raise ThrottlingException(
                f"Variant {variant} of serverless endpoint {endpoint} is already processing "
                f"its MaxConcurrency of {limit} concurrent invocations; retry later."
            )
        pool.in_flight += 1
        self.observe(
            endpoint,
            variant,
            "ServerlessConcurrentExecutionsUtilization",
            utilization(pool.in_flight, limit),
        )
        self._observe_provisioned(pool)
        if pool.waiting == 0:
            pool.failure = None  # a new request after a failed start tries again
        try:
            return await asyncio.wait_for(self._claim(fleet, pool), timeout_s)
        except TimeoutError:
            pool.in_flight -= 1
            raise ModelNotReady(
                f"No instance of serverless variant {variant} of endpoint {endpoint} was "
                f"ready within {timeout_s:g} s; retry the request."
            ) from None
        except BaseException:
            pool.in_flight -= 1
            raise

    async def _claim(self, fleet: VariantFleet, pool: _Pool) -> Instance:
        async with pool.cond:
            pool.waiting += 1
            try:
                while True:
                    serving = fleet.serving()
                    idle = [i for i in serving if i.instance_id not in pool.busy]
                    if idle:
                        # The most recently used: its caches are warm, and the others
                        # get to idle out.
                        inst = max(idle, key=lambda i: pool.last_used_s.get(i.instance_id, 0.0))
                        pool.busy.add(inst.instance_id)
                        return inst
                    if pool.failure is not None and pool.starting == 0:
                        raise ModelError(
                            f"The serverless instance could not start: {pool.failure}",
                            500,
                            pool.failure,
                        )
                    live = len(serving) + pool.starting
                    for _ in range(
                        starts_needed(
                            pool.waiting, 0, pool.starting, live, pool.config.max_concurrency
                        )
                    ):
                        pool.starting += 1
                        self._spawn(self._start(fleet, pool))
                    await pool.cond.wait()
            finally:
                pool.waiting -= 1

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _start(self, fleet: VariantFleet, pool: _Pool) -> None:
        try:
            inst = await fleet.add_one()
            pool.last_used_s[inst.instance_id] = self.clock()
            pool.failure = None
        except Exception as exc:
            log.error(
                "serverless %s/%s: an instance failed to start: %s",
                pool.endpoint,
                pool.variant,
                exc,
            )
            pool.failure = str(exc)
        finally:
            pool.starting -= 1
            async with pool.cond:
                pool.cond.notify_all()

    def _observe_provisioned(self, pool: _Pool) -> None:
        """ServerlessProvisionedConcurrencyUtilization, sampled on every acquire and idle
        check so an idle variant reports 0 (its scale-in alarm needs datapoints)."""
        warm = pool.config.warm
        if warm > 0:
            self.observe(
                pool.endpoint,
                pool.variant,
                "ServerlessProvisionedConcurrencyUtilization",
                provisioned_utilization(pool.in_flight, warm),
            )

    async def release(self, endpoint: str, variant: str, instance: Instance) -> None:
        dep = self.deployments.get(endpoint)
        fleet = None if dep is None else dep.fleets.get(variant)
        pool = None if fleet is None else self._pools.get(fleet)
        if pool is None:
            return
        pool.busy.discard(instance.instance_id)
        pool.last_used_s[instance.instance_id] = self.clock()
        pool.in_flight -= 1
        async with pool.cond:
            pool.cond.notify_all()

    def _serverless_fleets(self) -> list[tuple[VariantFleet, str, str, ServerlessConfig]]:
        out = []
        for name, dep in list(self.deployments.items()):
            for variant, fleet in dep.fleets.items():
                spec = dep.config.variant(variant)
                if spec is not None and spec.serverless is not None:
                    out.append((fleet, name, variant, spec.serverless))
        return out

    async def reap_once(self) -> None:
        """Stop instances idle for `idle_s`, down to ProvisionedConcurrency."""
        now = self.clock()
        live = self._serverless_fleets()
        for gone in set(self._pools) - {f for f, *_ in live}:
            del self._pools[gone]
        for fleet, endpoint, variant, config in live:
            pool = self._pools.get(fleet) or _Pool(endpoint, variant, config)
            self._pools[fleet] = pool
            pool.config = config
            self._observe_provisioned(pool)
            serving = fleet.serving()
            used = {i.instance_id: pool.last_used_s.setdefault(i.instance_id, now) for i in serving}
            for stale in set(pool.last_used_s) - set(used):
                del pool.last_used_s[stale]
            stop = set(idle_to_stop(used, pool.busy, now, self.idle_s, config.warm))
            if stop:
                log.info(
                    "serverless %s/%s: stopping %d idle instance(s)", endpoint, variant, len(stop)
                )
                for name in stop:
                    del pool.last_used_s[name]
                await fleet.retire([i for i in serving if i.instance_id in stop])

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.period_s)
            try:
                await self.reap_once()
            except Exception:
                log.exception("serverless idle check failed")

    def start(self) -> None:
        """Run `run` in the background until `close`."""
        if self._loop is None:
            self._loop = asyncio.ensure_future(self.run())

    async def close(self) -> None:
        tasks = [*self._tasks, *([self._loop] if self._loop is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loop = None
