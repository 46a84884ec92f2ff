"""Several gateways on one PostgreSQL: one leads (runs the controller, the transform and
compilation jobs, and publishes its routing snapshots), the others serve invocations from
those snapshots and try to take the lead every `leader_poll_interval_s`.

On SQLite there is one gateway and it leads from the start, as before. Control-plane
calls work on any gateway: they write the store, which the leader's controller reads.

When the instances outlive their gateway (Ray's detached actors), a new leader keeps the
last published routes (the hand-over) and serves each endpoint from them until its own
controller has adopted the endpoint's instances, so no invocation waits for the rebuild.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from modelhost.control.controller import Controller
from modelhost.fleet.instance import Instance
from modelhost.routing.table import EndpointRoute, RoutingTable
from modelhost.routing.wire import RemoteTarget, route_from_doc, route_to_doc
from modelhost.settings import Settings
from modelhost.store.coordination import LeaderLock, RouteBoard, is_postgres
from modelhost.store.fencing import LeaderFence
from modelhost.store.metadata import MetadataStore

log = logging.getLogger("modelhost.scaleout")

FOREIGN_CHECK_S = 1.0  # how often the leader rewrites routes another publisher overwrote


class GatewayRoutes:
    """The data plane's RoutingSource and InstanceHealth: the controller's own while this
    gateway leads, else the leader's snapshots (whose instances it cannot see die). Just
    after taking the lead, endpoints the controller has not rebuilt yet are served from
    the hand-over routes (`begin_handover`)."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self.leading = False
        self.remote = RoutingTable()
        self._docs: dict[str, dict[str, Any]] = {}
        self._handover: dict[str, EndpointRoute] = {}
        self._merged: tuple[RoutingTable, RoutingTable] | None = None

    @property
    def table(self) -> RoutingTable:
        if not self.leading:
            return self.remote
        own = self.controller.table
        if not self._handover:
            return own
        if self._merged is None or self._merged[0] is not own:
            self._merged = (own, self._with_handover(own))
        return self._merged[1]

    def begin_handover(self) -> None:
        """Keep serving the last published routes (the previous leader's instances, which
        outlive it) until the controller has its own route for each endpoint. Serverless
        variants are left out: their instances were the previous leader's."""
        self._handover = {
            name: route
            for name, route in self.remote.endpoints.items()
            if route.variants and not any(v.serverless for v in route.variants)
        }
        self._merged = None
        if self._handover:
            log.info("serving %d endpoint(s) from the hand-over routes", len(self._handover))

    def _with_handover(self, own: RoutingTable) -> RoutingTable:
        """`own` with the hand-over route of each endpoint the controller does not serve
        yet: one it has no route for before its first pass, or an InService one being
        rebuilt (a route with neither variants nor a reason). Once the controller serves
        an endpoint, or it is gone from the store, its hand-over route is dropped."""
        endpoints = dict(own.endpoints)
        for name, route in list(self._handover.items()):
            mine = own.endpoints.get(name)
            if mine is not None and (mine.variants or mine.unavailable_reason):
                del self._handover[name]
            elif mine is not None or not self.controller.reconciled:
                endpoints[name] = route
            else:
                del self._handover[name]
        return RoutingTable(endpoints, own.version)

    def set_remote(self, docs: dict[str, dict[str, Any]]) -> None:
        """Swap in the leader's snapshots; endpoints whose document did not change keep
        their route objects, so their instances' in-flight counts carry on."""
        if docs == self._docs:
            return
        old = self.remote.endpoints
        endpoints = {
            name: old[name] if name in old and self._docs.get(name) == doc else route_from_doc(doc)
            for name, doc in docs.items()
        }
        self._docs = docs
        self.remote = RoutingTable(endpoints, self.remote.version + 1)

    def leader_serving(self, endpoint: str) -> str | None:
        """The leader's URL when this gateway follows and `endpoint` is serverless: its
        instances start on demand in the leader's serverless pool (they are the leader's
        children, and MaxConcurrency is counted in one place), so the invocation goes
        there as it came."""
        if self.leading:
            return None
        doc = self._docs.get(endpoint)
        if doc is None or not any(v.get("Serverless") for v in doc["Variants"]):
            return None
        leader = doc.get("Leader")
        return str(leader) if leader else None

    def report_unreachable(self, endpoint: str, instance: Instance) -> None:
        if self.leading and not isinstance(instance, RemoteTarget):
            self.controller.report_unreachable(endpoint, instance)

    def is_alive(self, instance: Instance) -> bool:
        # A hand-over route's instance is not the controller's: as a follower, assume so.
        if not self.leading or isinstance(instance, RemoteTarget):
            return True
        return self.controller.provider.exit_code(instance) is None


class Leadership:
    """Takes the lead when it is free (at once on SQLite) and runs `on_lead` then; until
    then, follows the leader's routing snapshots. On PostgreSQL the leader checks its
    lock's connection every `leader_poll_interval_s`: when the check fails or hangs past
    `leader_keepalive_timeout_s` (the connection died, so the lock is free and another
    gateway may hold it already), it runs `on_step_down` and follows again."""

    def __init__(
        self,
        settings: Settings,
        store: MetadataStore,
        routes: GatewayRoutes,
        on_lead: Callable[[], Awaitable[None]],
        on_step_down: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.settings = settings
        self.routes = routes
        self.on_lead = on_lead
        self.on_step_down = on_step_down
        self.gateway_id = f"{settings.base_url}#{uuid.uuid4().hex[:8]}"
        self.lock = LeaderLock(settings.metadata_url, holder=self.gateway_id)
        self.board = RouteBoard(store.engine, settings.metadata_url, self.gateway_id)
        # What only the leader writes checks this in its transaction (store/fencing.py).
        self.fence = LeaderFence(self.lock)
        self.board.fence = self.fence
        self._stop_watch = threading.Event()
        self._watcher: threading.Thread | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._leader_tasks: list[asyncio.Task[None]] = []
        self.step_downs = 0

    async def start(self) -> None:
        """Lead at once if possible (always on SQLite); else follow and keep trying."""
        if await asyncio.to_thread(self.lock.try_acquire):
            await self._lead()
            return
        self._follow()

    def _follow(self) -> None:
        log.info("following the leader gateway (routing from its snapshots)")
        self._stop_watch = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="route-board", daemon=True)
        self._watcher.start()
        self._tasks.append(asyncio.ensure_future(self._campaign()))

    async def stop(self) -> None:
        self._stop_watch.set()
        tasks = [*self._tasks, *self._leader_tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._watcher is not None:
            await asyncio.to_thread(self._watcher.join, 5.0)
        await asyncio.to_thread(self.lock.release)

    def _watch(self) -> None:
        self.board.watch(
            self.routes.set_remote, self._stop_watch, self.settings.routes_poll_interval_s
        )

    async def _campaign(self) -> None:
        while True:
            await asyncio.sleep(self.settings.leader_poll_interval_s)
            if await asyncio.to_thread(self.lock.try_acquire):
                log.info("took the lead: starting the controller")
                self._stop_watch.set()
                await self._lead()
                return

    async def _lead(self) -> None:
        if self.routes.controller.provider.outlives_gateway:
            # The previous leader's instances still serve: keep its routes (read now if
            # this gateway never followed) until the controller adopts them.
            if is_postgres(self.settings.metadata_url) and not self.routes.remote.endpoints:
                with contextlib.suppress(Exception):
                    self.routes.set_remote(await asyncio.to_thread(self.board.load))
            self.routes.begin_handover()
        elif is_postgres(self.settings.metadata_url):
            await asyncio.to_thread(self.board.clear)
        self.routes.leading = True
        if is_postgres(self.settings.metadata_url):
            self._leader_tasks.append(asyncio.ensure_future(self._publish_loop()))
            self._leader_tasks.append(asyncio.ensure_future(self._keepalive()))
        await self.on_lead()

    async def still_leading(self) -> bool:
        """One check of the lock's connection, bounded by `leader_keepalive_timeout_s`
        (a query on a half-open connection could otherwise hang for minutes)."""
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(self.lock.try_acquire), self.settings.leader_keepalive_timeout_s
            )
        except TimeoutError:
            log.warning(
                "leader lock: no answer from the database within %g s",
                self.settings.leader_keepalive_timeout_s,
            )
            return False

    async def _keepalive(self) -> None:
        while await self.still_leading():
            await asyncio.sleep(self.settings.leader_poll_interval_s)
        # The lock went with the connection: another gateway may lead already. Stop
        # acting as the leader before anything else, then follow and campaign again.
        log.warning("lost the lead (the leader lock's database connection failed): stepping down")
        self.step_downs += 1
        self.routes.leading = False
        self.lock.abandon()
        others = [t for t in self._leader_tasks if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        self._leader_tasks = []
        if self.on_step_down is not None:
            try:
                await self.on_step_down()
            except Exception:
                log.exception("stepping down failed part-way")
        self._follow()

    async def _publish_loop(self) -> None:
        """Hands every new snapshot of an endpoint to the board (a new route object is a
        change: snapshots are immutable and rebuilt on every change)."""
        sent: dict[str, EndpointRoute] = {}
        checked = 0.0
        while True:
            if time.monotonic() - checked >= FOREIGN_CHECK_S:
                checked = time.monotonic()
                with contextlib.suppress(Exception):
                    for name in await asyncio.to_thread(self.board.foreign):
                        sent.pop(name, None)
                        if name not in self.routes.table.endpoints:
                            await asyncio.to_thread(self.board.publish, name, None)
            # With the hand-over routes while the controller rebuilds (they stay valid).
            table = self.routes.table
            changed = {n: r for n, r in table.endpoints.items() if sent.get(n) is not r}
            gone = [n for n in sent if n not in table.endpoints]
            try:
                for name, route in changed.items():
                    doc = route_to_doc(route)
                    # Where followers send what only the leader serves (serverless).
                    doc["Leader"] = self.settings.advertise_url or self.settings.base_url
                    await asyncio.to_thread(self.board.publish, name, doc)
                    sent[name] = route
                for name in gone:
                    await asyncio.to_thread(self.board.publish, name, None)
                    del sent[name]
            except Exception:
                log.warning("publishing routes failed; retrying", exc_info=True)
            await asyncio.sleep(0.05)
