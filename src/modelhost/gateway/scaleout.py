"""Several gateways on one PostgreSQL: one leads (runs the controller, the transform and
compilation jobs, and publishes its routing snapshots), the others serve invocations from
those snapshots and try to take the lead every `leader_poll_interval_s`.

On SQLite there is one gateway and it leads from the start, as before. Control-plane
calls work on any gateway: they write the store, which the leader's controller reads.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from modelhost.control.controller import Controller
from modelhost.fleet.instance import Instance
from modelhost.routing.table import EndpointRoute, RoutingTable
from modelhost.routing.wire import route_from_doc, route_to_doc
from modelhost.settings import Settings
from modelhost.store.coordination import LeaderLock, RouteBoard, is_postgres
from modelhost.store.metadata import MetadataStore

log = logging.getLogger("modelhost.scaleout")


class GatewayRoutes:
    """The data plane's RoutingSource and InstanceHealth: the controller's own while this
    gateway leads, else the leader's snapshots (whose instances it cannot see die)."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self.leading = False
        self.remote = RoutingTable()
        self._docs: dict[str, dict[str, Any]] = {}

    @property
    def table(self) -> RoutingTable:
        return self.controller.table if self.leading else self.remote

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

    def report_unreachable(self, endpoint: str, instance: Instance) -> None:
        if self.leading:
            self.controller.report_unreachable(endpoint, instance)

    def is_alive(self, instance: Instance) -> bool:
        return not self.leading or self.controller.provider.exit_code(instance) is None


class Leadership:
    """Takes the lead when it is free (at once on SQLite) and runs `on_lead` then; until
    then, follows the leader's routing snapshots."""

    def __init__(
        self,
        settings: Settings,
        store: MetadataStore,
        routes: GatewayRoutes,
        on_lead: Callable[[], Awaitable[None]],
    ) -> None:
        self.settings = settings
        self.routes = routes
        self.on_lead = on_lead
        self.gateway_id = f"{settings.base_url}#{uuid.uuid4().hex[:8]}"
        self.lock = LeaderLock(settings.metadata_url)
        self.board = RouteBoard(store.engine, settings.metadata_url, self.gateway_id)
        self._stop_watch = threading.Event()
        self._watcher: threading.Thread | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Lead at once if possible (always on SQLite); else follow and keep trying."""
        if await asyncio.to_thread(self.lock.try_acquire):
            await self._lead()
            return
        log.info("following the leader gateway (routing from its snapshots)")
        self._watcher = threading.Thread(target=self._watch, name="route-board", daemon=True)
        self._watcher.start()
        self._tasks.append(asyncio.ensure_future(self._campaign()))

    async def stop(self) -> None:
        self._stop_watch.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
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
        self.routes.leading = True
        if is_postgres(self.settings.metadata_url):
            await asyncio.to_thread(self.board.clear)
            self._tasks.append(asyncio.ensure_future(self._publish_loop()))
        await self.on_lead()

    async def _publish_loop(self) -> None:
        """Hands every new snapshot of an endpoint to the board (a new route object is a
        change: snapshots are immutable and rebuilt on every change)."""
        sent: dict[str, EndpointRoute] = {}
        while True:
            table = self.routes.controller.table
            changed = {n: r for n, r in table.endpoints.items() if sent.get(n) is not r}
            gone = [n for n in sent if n not in table.endpoints]
            try:
                for name, route in changed.items():
                    await asyncio.to_thread(self.board.publish, name, route_to_doc(route))
                    sent[name] = route
                for name in gone:
                    await asyncio.to_thread(self.board.publish, name, None)
                    del sent[name]
            except Exception:
                log.warning("publishing routes failed; retrying", exc_info=True)
            await asyncio.sleep(0.05)
