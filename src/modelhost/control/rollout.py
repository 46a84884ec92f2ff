"""Moving traffic from the old (blue) fleet to the new (green) one, with alarm rollback."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from modelhost.control.deployment import Deployment
from modelhost.control.guardrails import traffic_steps
from modelhost.routing.table import VariantRoute

ALARM_POLL_S = 0.2


@dataclass
class Rollout:
    """Both fleets of an endpoint during a guarded update; `share` is green's traffic."""

    blue: Deployment
    green: Deployment
    share: float = 0.0

    def routes(self) -> tuple[VariantRoute, ...]:
        # Green first: a TargetVariant naming a variant both fleets have reaches green.
        # `replace` keeps every other field of the route (a multi-model prefix, ...).
        green = tuple(replace(v, weight=v.weight * self.share) for v in self.green.routes())
        blue = tuple(replace(v, weight=v.weight * (1.0 - self.share)) for v in self.blue.routes())
        return green + blue


async def shift_traffic(
    rollout: Rollout,
    policy: dict[str, Any],
    *,
    alarms: list[str],
    alarm_state: Callable[[str], str | None],
    publish: Callable[[], None],
    event: Callable[[str, str], None],
) -> str | None:
    """Apply each traffic step and bake; None when green carries everything and has baked,
    else why the update must roll back (an alarm in ALARM, or the execution timeout)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    timeout_s = float(policy.get("MaximumExecutionTimeoutInSeconds") or float("inf"))
    routing = policy["TrafficRoutingConfiguration"]
    wait_s = float(routing.get("WaitIntervalInSeconds", 0))
    capacity = sum(f.desired for f in rollout.green.fleets.values())
    steps = traffic_steps(routing, capacity)

    async def bake(seconds: float, what: str) -> str | None:
        deadline = loop.time() + seconds
        while True:
            for name in alarms:
                if alarm_state(name) == "ALARM":
                    return f"alarm {name} went into ALARM while {what}"
            if loop.time() - started > timeout_s:
                return (
                    f"the update took longer than MaximumExecutionTimeoutInSeconds ({timeout_s:g})"
                )
            if loop.time() >= deadline:
                return None
            await asyncio.sleep(min(ALARM_POLL_S, max(deadline - loop.time(), 0.0)))

    for share in steps:
        rollout.share = share
        publish()
        event("ActivatingTraffic", f"{share:.0%} of traffic on the new fleet ({routing['Type']})")
        event("Baking", f"baking for {wait_s:g} s with {share:.0%} on the new fleet")
        reason = await bake(wait_s, f"baking with {share:.0%} of traffic on the new fleet")
        if reason:
            return reason
    termination_wait_s = float(policy.get("TerminationWaitInSeconds", 0))
    if termination_wait_s:
        event("Baking", f"waiting {termination_wait_s:g} s before retiring the old fleet")
        return await bake(termination_wait_s, "waiting to retire the old fleet")
    return None
