"""Moving traffic from the old (blue) fleet to the new (green) one, with alarm rollback.

Two ways, as in SageMaker's deployment guardrails: `shift_traffic` (blue/green: the whole
green fleet runs beside blue and traffic moves in steps) and `roll_instances` (rolling:
green instances replace blue ones batch by batch, traffic following the instances)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from modelhost.control.deployment import Deployment
from modelhost.control.guardrails import rolling_batch, rolling_steps, traffic_steps
from modelhost.fleet.variant import StartupError
from modelhost.routing.table import VariantRoute

ALARM_POLL_S = 0.2


@dataclass
class Rollout:
    """Both fleets of an endpoint during a guarded update.

    Blue/green: `share` is green's share of traffic. Rolling (`by_capacity`): each
    variant's traffic splits by how many instances each side has serving."""

    blue: Deployment
    green: Deployment
    share: float = 0.0
    by_capacity: bool = False

    def _green_share(self, variant: str) -> float:
        if not self.by_capacity:
            return self.share
        green = self.green.fleets.get(variant)
        blue = self.blue.fleets.get(variant)
        g = len(green.serving()) if green is not None else 0
        b = len(blue.serving()) if blue is not None else 0
        return g / (g + b) if g + b else 0.0

    def routes(self) -> tuple[VariantRoute, ...]:
        # Green first: a TargetVariant naming a variant both fleets have reaches green.
        # `replace` keeps every other field of the route (a multi-model prefix, ...).
        green = tuple(
            replace(v, weight=v.weight * self._green_share(v.name)) for v in self.green.routes()
        )
        blue = tuple(
            replace(v, weight=v.weight * (1.0 - self._green_share(v.name)))
            for v in self.blue.routes()
        )
        return green + blue


class _Baker:
    """Waits out baking periods while watching the rollback alarms and the deadline."""

    def __init__(
        self, alarms: list[str], alarm_state: Callable[[str], str | None], timeout_s: float
    ) -> None:
        self.alarms = alarms
        self.alarm_state = alarm_state
        self.timeout_s = timeout_s
        self.loop = asyncio.get_running_loop()
        self.started = self.loop.time()

    def reason(self, what: str) -> str | None:
        for name in self.alarms:
            if self.alarm_state(name) == "ALARM":
                return f"alarm {name} went into ALARM while {what}"
        if self.loop.time() - self.started > self.timeout_s:
            return (
                f"the update took longer than MaximumExecutionTimeoutInSeconds ({self.timeout_s:g})"
            )
        return None

    async def bake(self, seconds: float, what: str) -> str | None:
        deadline = self.loop.time() + seconds
        while True:
            reason = self.reason(what)
            if reason or self.loop.time() >= deadline:
                return reason
            await asyncio.sleep(min(ALARM_POLL_S, max(deadline - self.loop.time(), 0.0)))


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
    baker = _Baker(
        alarms, alarm_state, float(policy.get("MaximumExecutionTimeoutInSeconds") or "inf")
    )
    routing = policy["TrafficRoutingConfiguration"]
    wait_s = float(routing.get("WaitIntervalInSeconds", 0))
    capacity = sum(f.desired for f in rollout.green.fleets.values())
    steps = traffic_steps(routing, capacity)

    for share in steps:
        rollout.share = share
        publish()
        event("ActivatingTraffic", f"{share:.0%} of traffic on the new fleet ({routing['Type']})")
        event("Baking", f"baking for {wait_s:g} s with {share:.0%} on the new fleet")
        reason = await baker.bake(wait_s, f"baking with {share:.0%} of traffic on the new fleet")
        if reason:
            return reason
    termination_wait_s = float(policy.get("TerminationWaitInSeconds", 0))
    if termination_wait_s:
        event("Baking", f"waiting {termination_wait_s:g} s before retiring the old fleet")
        return await baker.bake(termination_wait_s, "waiting to retire the old fleet")
    return None


async def roll_instances(
    rollout: Rollout,
    policy: dict[str, Any],
    targets: dict[str, int],
    *,
    alarms: list[str],
    alarm_state: Callable[[str], str | None],
    event: Callable[[str, str], None],
    drain_s: float,
) -> str | None:
    """RollingUpdatePolicy: per variant, start a batch of green instances, let them take
    their share of traffic, retire as many blue ones, bake; repeat. On an alarm (or the
    timeout, or green instances that fail to start) roll back batch by batch with
    RollbackMaximumBatchSize (default: all at once) and return why; None when done.

    `targets` is each variant's green instance count; green fleets start empty."""
    rollout.by_capacity = True
    baker = _Baker(
        alarms, alarm_state, float(policy.get("MaximumExecutionTimeoutInSeconds") or "inf")
    )
    wait_s = float(policy.get("WaitIntervalInSeconds", 0))
    blue_counts = {name: rollout.blue.fleets[name].desired for name in targets}
    plans = {
        name: rolling_steps(
            blue_counts[name],
            green,
            rolling_batch(policy["MaximumBatchSize"], max(green, blue_counts[name])),
        )
        for name, green in targets.items()
    }
    total = max(len(p) for p in plans.values())
    reason: str | None = None
    for i in range(total):
        for name, plan in plans.items():
            g, b = plan[min(i, len(plan) - 1)]
            try:
                await rollout.green.fleets[name].scale_to(g, drain_s=drain_s)
            except StartupError as exc:
                reason = f"new instances of variant {name} failed to start: {exc}"
                break
            await rollout.blue.fleets[name].scale_to(b, drain_s=drain_s)
        if reason:
            break
        event(
            "ActivatingTraffic",
            f"rolling step {i + 1}/{total}: "
            + ", ".join(
                f"{n} {len(rollout.green.fleets[n].serving())} new / "
                f"{len(rollout.blue.fleets[n].serving())} old"
                for n in plans
            ),
        )
        event("Baking", f"baking for {wait_s:g} s after rolling step {i + 1}/{total}")
        reason = await baker.bake(wait_s, f"baking after rolling step {i + 1}/{total}")
        if reason:
            break
    if reason is None:
        return None
    await _roll_back_instances(rollout, policy, blue_counts, event=event, drain_s=drain_s)
    return reason


async def _roll_back_instances(
    rollout: Rollout,
    policy: dict[str, Any],
    blue_counts: dict[str, int],
    *,
    event: Callable[[str, str], None],
    drain_s: float,
) -> None:
    """Blue back to its old size before green gives up its instances, in batches."""
    size = policy.get("RollbackMaximumBatchSize") or {"Type": "CAPACITY_PERCENT", "Value": 100}
    for name, blue in blue_counts.items():
        green_fleet = rollout.green.fleets[name]
        blue_fleet = rollout.blue.fleets[name]
        batch = rolling_batch(size, blue, "RollbackMaximumBatchSize")
        for b, g in rolling_steps(len(green_fleet.serving()), blue, batch):
            event("RollingBack", f"{name}: restoring {b}/{blue} old instances")
            try:
                await blue_fleet.scale_to(max(b, len(blue_fleet.serving())), drain_s=drain_s)
            except StartupError as exc:
                # Keep green serving rather than leave the variant with no capacity.
                event("RollingBack", f"{name}: old instances failed to start again: {exc}")
                return
            await green_fleet.scale_to(g, drain_s=drain_s)
