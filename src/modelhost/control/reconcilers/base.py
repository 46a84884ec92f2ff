"""What every reconciler shares: the contract, the running state and the transitions.

A reconciler looks at the endpoints' desired state (typed, freshly read from the store
on every pass) and the running state (deployments, rollouts) and, for each endpoint it
is concerned with, starts at most one transition (an asyncio task) that moves the
endpoint one step. Only one transition runs per endpoint at a time, whoever started it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from modelhost.control.deployment import Deployment
from modelhost.control.rollout import Rollout
from modelhost.control.routes import RoutePublisher
from modelhost.control.status import StatusWriter
from modelhost.fleet.manager import FleetManager
from modelhost.resources.endpoints import Endpoint
from modelhost.routing.bandit import BanditBook
from modelhost.settings import Settings

log = logging.getLogger("modelhost.control")


class Reconciler(Protocol):
    """One concern of the control loop. `step(endpoints)` is called on every pass with
    every endpoint's desired state; it must be idempotent (a pass with nothing to do
    does nothing) and must not block: long work runs as a transition."""

    def step(self, endpoints: dict[str, Endpoint]) -> None: ...


class Transitions:
    """At most one running transition (task) per endpoint; `on_done` (the controller's
    wake-up) is called when one ends, so the next pass sees its result at once."""

    def __init__(self, on_done: Callable[[], None]) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._on_done = on_done

    def busy(self, name: str) -> bool:
        return name in self._tasks

    def spawn(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks[name] = task

        def done(t: asyncio.Task[None]) -> None:
            if self._tasks.get(name) is t:
                del self._tasks[name]
            if not t.cancelled() and t.exception() is not None:
                log.error("transition of %s failed", name, exc_info=t.exception())
            self._on_done()

        task.add_done_callback(done)

    def running(self) -> list[asyncio.Task[None]]:
        return list(self._tasks.values())

    def abort(self, name: str) -> None:
        task = self._tasks.get(name)
        if task is not None:
            task.cancel()

    async def cancel_all(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@dataclass
class ControlState:
    """The running state the reconcilers share, and the tools to change it."""

    settings: Settings
    fleets: FleetManager
    status: StatusWriter
    transitions: Transitions
    bandits: BanditBook
    deployments: dict[str, Deployment] = field(default_factory=dict)
    rollouts: dict[str, Rollout] = field(default_factory=dict)
    # The state of a named alarm (None if there is no such alarm); set by the gateway.
    alarm_state: Callable[[str], str | None] = lambda _name: None
    routes: RoutePublisher = field(init=False)

    def __post_init__(self) -> None:
        self.routes = RoutePublisher(self.deployments, self.rollouts, self.bandits)

    def publish(self, name: str) -> None:
        self.routes.publish(name)

    @property
    def drain_s(self) -> float:
        """How long a retiring fleet may finish in-flight requests."""
        return self.settings.invocation_timeout_s

    async def teardown(self, name: str) -> None:
        """Stop the endpoint's fleets and take its route down."""
        dep = self.deployments.pop(name, None)
        self.routes.drop(name)
        if dep is not None:
            await dep.stop(drain_s=self.drain_s)
