"""The instance provider protocol: where instance processes run.

`LocalProcessProvider` (child processes on this machine, forked from a zygote where they
can) and `RayProvider` (actors on the nodes of a Ray cluster) implement it. Every
instance, an endpoint's or a transform job's, is started through the `FleetManager`'s
provider.

Local instances die with the gateway that started them. Ray-placed endpoint instances
(`LaunchSpec.detached`) outlive it: a gateway that stops leading `release`s them instead
of stopping them, and the next leader `adopt`s them instead of starting new ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from modelhost.fleet.instance import Instance, LaunchSpec


class InstanceProvider(Protocol):
    """Starts and stops instances; the fleet health-checks them over HTTP itself."""

    # True when detached instances keep serving after their gateway dies (Ray): the
    # gateway's last routes stay valid while the next leader adopts them.
    outlives_gateway: bool

    def start(self, spec: LaunchSpec) -> Instance:
        """Start one instance (at once; it answers /ping later)."""
        ...

    def exit_code(self, instance: Instance) -> int | None:
        """None while the instance runs, else its exit status (-1 when unknown)."""
        ...

    async def stop(self, instance: Instance, grace_s: float) -> None:
        """Stop it: a graceful signal, then a kill after `grace_s`."""
        ...

    async def adopt(self, spec: LaunchSpec, count: int) -> list[Instance]:
        """At most `count` running instances of `spec`'s variant that an earlier gateway
        started and nobody tracks now, running `spec.fingerprint`; they are this
        provider's from now on (their /ping is the fleet's to check). Live ones of that
        variant running anything else, or beyond `count`, are stopped. [] from providers
        whose instances die with their gateway, and for specs that are not detached."""
        ...

    async def release(self, instance: Instance, grace_s: float) -> None:
        """Let go of an instance when this gateway stops leading or stops: a detached one
        keeps serving (the next leader adopts it) and is forgotten here; any other is
        stopped as by `stop`."""
        ...

    async def sweep(self, claimed: Callable[[str], bool]) -> int:
        """Stop the detached instances nobody tracks whose endpoint `claimed(endpoint)`
        says is not being worked on (the leader's leftovers: an endpoint deleted while no
        gateway led, a variant an interrupted update dropped); how many. 0 from providers
        whose instances die with their gateway."""
        ...

    def kill_all(self) -> None:
        """Last-resort synchronous cleanup of everything this provider started (and has
        not released)."""
        ...


class DiesWithGateway:
    """The adoption side of a provider whose instances are the gateway's own child
    processes and die with it: nothing to adopt or sweep, and releasing is stopping."""

    outlives_gateway = False

    async def stop(self, instance: Instance, grace_s: float) -> None:
        raise NotImplementedError

    async def adopt(self, spec: LaunchSpec, count: int) -> list[Instance]:
        return []

    async def release(self, instance: Instance, grace_s: float) -> None:
        await self.stop(instance, grace_s)

    async def sweep(self, claimed: Callable[[str], bool]) -> int:
        return 0
