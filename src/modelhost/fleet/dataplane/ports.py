"""What the request path needs from the rest of the system, as small Protocols.

The data plane never sees the controller: it reads routing snapshots from a
`RoutingSource`, tells an `InstanceHealth` sink about instances it could not reach, and
draws randomness from an injected `Rand`, so it is tested with fakes and works the same
whoever publishes the snapshots (Ray Serve's request path gets snapshots the same way).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from modelhost.fleet.instance import Instance
from modelhost.routing.bandit import Bandit
from modelhost.routing.choose import Rand
from modelhost.routing.table import Address, RoutingTable

__all__ = [
    "BanditLookup",
    "InstanceHealth",
    "InstanceTransport",
    "Rand",
    "RoutingSource",
    "ServerlessCapacity",
]


class RoutingSource(Protocol):
    """Holds the current routing snapshot; swapped whole by whoever publishes it."""

    @property
    def table(self) -> RoutingTable: ...


class InstanceTransport(Protocol):
    """Requests to an instance's container-contract server (`fleet.http1.HTTP1Pool`)."""

    async def request(
        self,
        address: Address,
        method: bytes,
        path: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        timeout_s: float,
    ) -> tuple[int, dict[bytes, bytes], bytes]:
        """(status, lower-case headers, body); raises InstanceUnreachable (never reached
        the instance), InstanceDisconnected (broke mid-request) or TimeoutError."""
        ...


class InstanceHealth(Protocol):
    """Where the request path reports what it learns about instances' health."""

    def report_unreachable(self, endpoint: str, instance: Instance) -> None:
        """A connection to `instance` failed: take it out of routing until it is healthy."""

    def is_alive(self, instance: Instance) -> bool:
        """Whether the instance's process still runs (a broken keep-alive connection to a
        live instance is retried once; to a dead one it is not)."""


class ServerlessCapacity(Protocol):
    """Instances of serverless variants, one invocation each (scaling/serverless_pool.py).

    `acquire` returns an idle instance reserved for one invocation, starting one when none
    is idle (waiting for its /ping up to `timeout_s`); it raises ThrottlingException when
    MaxConcurrency invocations run already, ModelNotReady when no instance was ready in
    time, ModelError when one could not start. Every acquired instance is `release`d."""

    async def acquire(self, endpoint: str, variant: str, timeout_s: float) -> Instance: ...

    async def release(self, endpoint: str, variant: str, instance: Instance) -> None: ...


BanditLookup = Callable[[str], Bandit | None]
"""The bandit of an endpoint whose weights follow rewards (None for the others)."""
