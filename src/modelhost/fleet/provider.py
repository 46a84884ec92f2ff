"""The instance provider protocol: where instance processes run.

`LocalProcessProvider` (child processes on this machine) is the one implementation now;
the scale-out issue adds one that places instances with Ray. Every instance, an
endpoint's or a transform job's, is started through the `FleetManager`'s provider.
"""

from __future__ import annotations

from typing import Protocol

from modelhost.fleet.instance import Instance, LaunchSpec


class InstanceProvider(Protocol):
    """Starts and stops instances; the fleet health-checks them over HTTP itself."""

    def start(self, spec: LaunchSpec) -> Instance:
        """Start one instance (at once; it answers /ping later)."""
        ...

    def exit_code(self, instance: Instance) -> int | None:
        """None while the instance runs, else its exit status (-1 when unknown)."""
        ...

    async def stop(self, instance: Instance, grace_s: float) -> None:
        """Stop it: a graceful signal, then a kill after `grace_s`."""
        ...

    def kill_all(self) -> None:
        """Last-resort synchronous cleanup of everything this provider started."""
        ...
