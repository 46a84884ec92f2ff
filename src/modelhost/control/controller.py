"""The controller: reconciles endpoints in the store with running fleets.

Desired state lives in the metadata store (endpoint records with a status and a config
snapshot, read as typed `Endpoint`s). Each pass runs the per-concern reconcilers
(`control/reconcilers/`: endpoints, weights, rollouts, bandits) in order; each starts
at most one transition per endpoint that moves it one step, and only one runs per
endpoint at a time. Passes are idempotent; a pass with nothing to do does nothing.
Between passes a health loop checks every fleet and replaces dead instances (and now and
then evicts idle entries of the artifact caches beyond their budget). The
request path reads the published RoutingTable (`table`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable

import numpy as np

from modelhost.control.deployment import Deployment
from modelhost.control.reconcilers import registry
from modelhost.control.reconcilers.base import ControlState, Reconciler, Transitions
from modelhost.control.status import StatusWriter
from modelhost.fleet.client import InstanceClient
from modelhost.fleet.instance import Instance
from modelhost.fleet.manager import FleetManager
from modelhost.fleet.provider import InstanceProvider
from modelhost.routing.bandit import BanditBook
from modelhost.routing.table import RoutingTable
from modelhost.settings import Settings
from modelhost.store.artifacts import ArtifactStore
from modelhost.store.cache_bound import PassSchedule
from modelhost.store.metadata import MetadataStore

log = logging.getLogger("modelhost.control")

# How often the leader stops instances that outlive their gateway but no endpoint claims.
SWEEP_S = 60.0


class Controller:
    """Runs the reconcilers and publishes the routing table the request path reads.

    `fleets` owns the instances (the gateway shares one FleetManager with the transform
    jobs and closes it at shutdown); without one the controller makes and closes its own.
    `clock` stamps the records' LastModifiedTime."""

    def __init__(
        self,
        settings: Settings,
        store: MetadataStore,
        fleets: FleetManager | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self._owns_fleets = fleets is None
        self.fleets = fleets if fleets is not None else FleetManager(settings)
        self.rand = random.random
        self._wake = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        # True once the first reconcile pass since `start` ran: every endpoint in the store
        # has a route (or a deployment being rebuilt) from then on.
        self.reconciled = False
        self.state = ControlState(
            settings=settings,
            fleets=self.fleets,
            status=StatusWriter(store, clock),
            transitions=Transitions(self.wake),
            # Endpoints whose weights follow rewards (native RoutingConfig in the record).
            bandits=BanditBook(time.monotonic, np.random.default_rng()),
        )
        self.state.status.on_status = self.state.routes.publish_status
        self.reconcilers: list[Reconciler] = registry.build(self.state)
        # The artifact caches' periodic eviction pass runs on the health loop.
        self._cache_pass = PassSchedule(settings.artifact_cache_evict_interval_s)

    # --- what the request path and the API read -------------------------------------

    @property
    def table(self) -> RoutingTable:
        return self.state.routes.table

    @property
    def bandits(self) -> BanditBook:
        return self.state.bandits

    @property
    def alarm_state(self) -> Callable[[str], str | None]:
        return self.state.alarm_state

    @alarm_state.setter
    def alarm_state(self, value: Callable[[str], str | None]) -> None:
        self.state.alarm_state = value

    @property
    def artifacts(self) -> ArtifactStore:
        return self.fleets.artifacts

    @property
    def provider(self) -> InstanceProvider:
        return self.fleets.provider

    @property
    def client(self) -> InstanceClient:
        return self.fleets.client

    def deployment(self, endpoint: str) -> Deployment | None:
        return self.state.deployments.get(endpoint)

    def publish(self, name: str) -> None:
        self.state.publish(name)

    def is_alive(self, instance: Instance) -> bool:
        """The instance's process still runs (the request path may retry a stale
        connection to it once)."""
        return self.fleets.exit_code(instance) is None

    def report_unreachable(self, endpoint: str, instance: Instance) -> None:
        dep = self.state.deployments.get(endpoint)
        if dep is None:
            return
        fleet = dep.fleets.get(instance.spec.variant_name)
        if fleet is not None:
            fleet.mark_unreachable(instance)

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        self.reconciled = False
        self._loops = [
            asyncio.ensure_future(self._reconcile_loop()),
            asyncio.ensure_future(self._health_loop()),
        ]

    async def stop(self) -> None:
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        await self.state.transitions.cancel_all()
        deployments = list(self.state.deployments.values())
        self.state.deployments.clear()
        # A gateway that leads again starts from nothing, not from this term's routes.
        self.reconciled = False
        self.state.routes.table = RoutingTable()
        # Released, not stopped: instances that outlive this gateway (Ray) keep serving and
        # the next leader adopts them; the others stop.
        await asyncio.gather(*(d.release(drain_s=5.0) for d in deployments), return_exceptions=True)
        if self._owns_fleets:
            await self.fleets.close()

    def wake(self) -> None:
        self._wake.set()

    def abort(self, name: str) -> None:
        """Cancel a running transition (e.g. a create that a delete overtakes)."""
        self.state.transitions.abort(name)

    # --- loops -----------------------------------------------------------------------

    def reconcile_once(self) -> None:
        endpoints = self.state.status.load()
        for reconciler in self.reconcilers:
            reconciler.step(endpoints)

    async def _reconcile_loop(self) -> None:
        while True:
            try:
                self.reconcile_once()
                self.reconciled = True
            except Exception:
                log.exception("reconcile pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.reconcile_interval_s)
            self._wake.clear()

    async def _health_loop(self) -> None:
        loop = asyncio.get_running_loop()
        swept: float | None = None
        while True:
            await asyncio.sleep(self.settings.health_check_interval_s)
            await self.check_health()
            # The first sweep once the rebuild is over (every adoption done), then now and
            # then: instances nobody adopted are a dead leader's leftovers.
            due = swept is None or loop.time() - swept >= SWEEP_S
            if self.reconciled and due and not self.state.transitions.running():
                swept = loop.time()
                await self.sweep()
            # Not while endpoints start (a rebuild after a restart): entries they are about
            # to lease again would look idle.
            idle = self.reconciled and not self.state.transitions.running()
            if idle and self._cache_pass.due():
                await self.bound_caches()

    async def bound_caches(self) -> None:
        """The periodic eviction pass over the artifact caches (`FleetManager.bound_caches`):
        entries whose fleets stopped go once a cache is over its budget, without waiting
        for the next fetch. A failure is logged; the next pass tries again."""
        try:
            lines = await asyncio.to_thread(self.fleets.bound_caches)
        except Exception:
            log.exception("the artifact caches' eviction pass failed")
            return
        for line in lines:
            log.info("%s", line)

    async def sweep(self) -> int:
        """Stop the instances that outlive their gateway and that no idle endpoint's
        fleets track (an endpoint deleted, or a variant an update dropped, while no
        gateway led); endpoints in a transition or a rollout are left alone."""
        state = self.state

        def claimed(endpoint: str) -> bool:
            return state.transitions.busy(endpoint) or endpoint in state.rollouts

        try:
            ended = await self.fleets.provider.sweep(claimed)
        except Exception:
            log.exception("sweeping left-behind instances failed")
            return 0
        if ended:
            log.warning("stopped %d instance(s) no endpoint serves any more", ended)
        return ended

    async def check_health(self) -> None:
        """One health round over every fleet not in the middle of a transition. While a
        guarded rollout bakes (minutes, maybe), both fleets keep being checked and
        healed; nothing else changes them meanwhile."""
        state = self.state
        for name, dep in list(state.deployments.items()):
            rollout = state.rollouts.get(name)
            if state.transitions.busy(name) and rollout is None:
                continue  # a transition owns this endpoint right now
            fleets = [dep] if rollout is None else [rollout.blue, rollout.green]
            try:
                for deployment in fleets:
                    await deployment.check()
            except Exception:
                log.exception("health check of %s failed", name)
