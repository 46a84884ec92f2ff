"""The autoscaler: every `scaling_period_s` it evaluates each scalable target's scheduled
actions and scaling policies and sets the variant's desired capacity.

It writes only desired state (the capacity member of the endpoint's variant, through
`Capacity`) and activities; the controller's capacity reconciler starts instances (routed
once /ping passes) or drains them (out of routing first). While the endpoint is not
InService (an UpdateEndpoint is running) a change is refused and a Failed activity says
why; the next period tries again. Several policies on one target combine as AWS does:
the largest scale-out wins; a scale-in happens only when every target-tracking policy
wants one, and then to the largest capacity any of them asks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from modelhost.scaling.activities import Activities, alarm_cause
from modelhost.scaling.book import Dimension, ScalingBook, dimension, parse_resource
from modelhost.scaling.capacity import Capacity
from modelhost.scaling.decisions import CooldownState, Decision, Direction, Limits
from modelhost.scaling.metrics import (
    alarm_points,
    concurrency_key,
    count_key,
    tracking_points,
)
from modelhost.scaling.scheduled import ScheduledActions
from modelhost.scaling.step import StepScaling, step_decision
from modelhost.scaling.target_tracking import IN_DATAPOINTS, TargetTracking, track
from modelhost.store.metadata import Kind, Record
from modelhost.telemetry.alarms import AlarmBook, AlarmState
from modelhost.telemetry.series import SeriesStore

log = logging.getLogger("modelhost.scaling")
SAMPLES_PER_PERIOD = 6


@dataclass
class Vote:
    """One policy's decision and the Cause an activity would give."""

    decision: Decision
    cause: str
    tracking: bool


class Autoscaler:
    """See the module docstring. `clock` is injectable; `evaluate()` is one period."""

    def __init__(
        self,
        book: ScalingBook,
        capacity: Capacity,
        series: SeriesStore,
        alarms: AlarmBook,
        period_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.book = book
        self.capacity = capacity
        self.series = series
        self.alarms = alarms
        self.period_s = period_s
        self.clock = clock
        self.activities = Activities(book, capacity)
        self.scheduled = ScheduledActions(book, self.activities)
        self._last_s: float | None = None  # None: no pass yet since the gateway started

    @property
    def datapoint_s(self) -> int:
        return max(1, round(self.period_s))

    async def run(self) -> None:
        """Sample concurrency several times a period; evaluate once a period."""
        tick = 0
        while True:
            await asyncio.sleep(self.period_s / SAMPLES_PER_PERIOD)
            tick += 1
            try:
                self.sample()
                if tick % SAMPLES_PER_PERIOD == 0:
                    self.evaluate()
            except Exception:
                log.exception("autoscaler pass failed")

    def sample(self) -> None:
        """ConcurrentRequestsPerModel: requests in flight per serving instance."""
        for name, dep in list(self.capacity.controller.state.deployments.items()):
            for variant, fleet in dep.fleets.items():
                serving = fleet.serving()
                if serving:
                    busy = sum(i.outstanding for i in serving) / len(serving)
                    self.series.observe(concurrency_key(name, variant), busy)

    def evaluate(self) -> None:
        now = self.clock()
        since, self._last_s = self._last_s, now
        for rec in self.book.targets():
            try:
                self._target(rec, since, now)
            except Exception:
                log.exception("scaling %s failed", rec.spec.get("ResourceId"))

    def _target(self, rec: Record, since: float | None, now: float) -> None:
        spec = rec.spec
        dim = dimension(spec["ScalableDimension"])
        endpoint, variant = parse_resource(spec["ResourceId"], dim)
        current = self.capacity.current(endpoint, variant, dim)
        if current is None:
            return
        serving = self.capacity.serving(endpoint, variant, dim)
        if not dim.serverless:
            self.series.observe(count_key("DesiredInstanceCount", endpoint, variant), current)
            if serving is not None:
                self.series.observe(count_key("CurrentInstanceCount", endpoint, variant), serving)
        self.activities.follow(spec, dim, endpoint, variant)
        suspended = spec.get("SuspendedState") or {}
        bounds_changed = bool(spec.pop("BoundsChanged", False))
        if bounds_changed:
            self.book.save(rec)
        paused = bool(suspended.get("ScheduledScalingSuspended"))
        bounds_changed = self.scheduled.run(rec, since, now, paused) or bounds_changed
        # Outside MinCapacity..MaxCapacity (new bounds, or a manual
        # UpdateEndpointWeightsAndCapacities beyond them): back into the range first.
        if self._clamp(rec, dim, endpoint, variant, current, bounds_changed):
            return
        votes = self._votes(rec, endpoint, variant, current, now)
        chosen = _combine(votes)
        if chosen is None:
            return
        vote, direction = chosen
        if suspended.get(
            "DynamicScalingOutSuspended"
            if direction == Direction.OUT
            else "DynamicScalingInSuspended"
        ):
            return
        self._apply(rec, dim, endpoint, variant, current, vote, now)

    def _clamp(
        self,
        rec: Record,
        dim: Dimension,
        endpoint: str,
        variant: str,
        current: int,
        bounds_changed: bool,
    ) -> bool:
        """A capacity outside MinCapacity..MaxCapacity moves into the range: after the
        bounds changed (RegisterScalableTarget, a scheduled action), or after a manual
        change beyond them. Whether it did."""
        low, high = rec.spec["MinCapacity"], rec.spec["MaxCapacity"]
        if current < low:
            why = (
                f"minimum capacity was set to {low}"
                if bounds_changed
                else f"{dim.noun} {current} was below the minimum capacity {low}"
            )
            desired, direction = low, Direction.OUT
        elif current > high:
            why = (
                f"maximum capacity was set to {high}"
                if bounds_changed
                else f"{dim.noun} {current} was above the maximum capacity {high}"
            )
            desired, direction = high, Direction.IN
        else:
            return False
        vote = Vote(Decision(direction, desired), why, False)
        self._apply(rec, dim, endpoint, variant, current, vote, self.clock())
        return True

    # --- policies --------------------------------------------------------------------

    def _votes(
        self, rec: Record, endpoint: str, variant: str, current: int, now: float
    ) -> list[Vote | None]:
        """One entry per policy: its vote, or None when it does not want a change."""
        limits = Limits(rec.spec["MinCapacity"], rec.spec["MaxCapacity"], current)
        cooldown = CooldownState.from_spec(rec.spec.get("Cooldown"))
        votes: list[Vote | None] = []
        for policy in self.book.children(
            Kind.SCALING_POLICY, rec.spec["ResourceId"], rec.spec["ScalableDimension"]
        ):
            p = policy.spec
            if p["PolicyType"] == "TargetTrackingScaling":
                votes.append(self._tracking(p, endpoint, variant, limits, cooldown, now))
            else:
                votes.extend(self._steps(policy, limits, cooldown, now))
        return votes

    def _tracking(
        self,
        p: dict[str, Any],
        endpoint: str,
        variant: str,
        limits: Limits,
        cooldown: CooldownState,
        now: float,
    ) -> Vote | None:
        config = p["TargetTrackingScalingPolicyConfiguration"]
        points = tracking_points(
            self.series, config, endpoint, variant, now, self.datapoint_s, IN_DATAPOINTS
        )
        decision = track(
            TargetTracking.from_spec(config), points, limits, cooldown, now, self.period_s
        )
        if decision is None:
            return Vote(Decision(Direction.IN, limits.current, "no alarm"), "", True)
        alarms = p.get("Alarms") or [{}, {}]
        alarm = alarms[0 if decision.direction == Direction.OUT else 1].get("AlarmName", "")
        return Vote(decision, alarm_cause(alarm, p["PolicyName"]), True)

    def _steps(
        self, policy: Record, limits: Limits, cooldown: CooldownState, now: float
    ) -> list[Vote | None]:
        config = StepScaling.from_spec(policy.spec["StepScalingPolicyConfiguration"])
        out: list[Vote | None] = []
        for name in self.alarms.names():
            record = self.alarms.record(name)
            if record is None or policy.arn not in record.spec.actions.get("AlarmActions", ()):
                continue
            if record.state != AlarmState.ALARM or not record.actions_enabled:
                continue
            values = alarm_points(self.series, record.spec, now)
            decision = step_decision(
                config, values, record.spec.threshold, limits, cooldown, now, self.period_s
            )
            if decision is not None:
                out.append(Vote(decision, alarm_cause(name, policy.spec["PolicyName"]), False))
        return out

    def _apply(
        self,
        rec: Record,
        dim: Dimension,
        endpoint: str,
        variant: str,
        current: int,
        vote: Vote,
        now: float,
    ) -> None:
        desired = vote.decision.desired
        if vote.decision.held is not None or desired == current:
            return
        reason = self.capacity.set(endpoint, variant, dim, desired)
        if reason is not None:
            self.activities.failed(rec.spec, dim, desired, vote.cause, reason)
            return
        cooldown = CooldownState.from_spec(rec.spec.get("Cooldown"))
        cooldown.record(vote.decision.direction, current, now, self._out_cooldown_s(rec))
        rec.spec["Cooldown"] = cooldown.to_spec()
        self.book.save(rec)
        self.activities.started(rec.spec, dim, current, desired, vote.cause)
        log.info(
            "%s: %s %d -> %d (%s)", rec.spec["ResourceId"], dim.noun, current, desired, vote.cause
        )

    def _out_cooldown_s(self, rec: Record) -> float:
        """The longest scale-out cooldown of the target's policies, in seconds here."""
        longest = 0.0
        for policy in self.book.children(
            Kind.SCALING_POLICY, rec.spec["ResourceId"], rec.spec["ScalableDimension"]
        ):
            p = policy.spec
            if p["PolicyType"] == "TargetTrackingScaling":
                config = TargetTracking.from_spec(p["TargetTrackingScalingPolicyConfiguration"])
                longest = max(longest, config.scale_out_cooldown_s)
            else:
                longest = max(
                    longest, StepScaling.from_spec(p["StepScalingPolicyConfiguration"]).cooldown_s
                )
        return longest * self.period_s / 60.0


def _combine(votes: list[Vote | None]) -> tuple[Vote, Direction] | None:
    """The largest scale-out; else a scale-in all tracking policies agree on."""
    real = [v for v in votes if v is not None and v.decision.held != "no alarm"]
    outs = [v for v in real if v.decision.direction == Direction.OUT]
    if outs:
        best = max(outs, key=lambda v: v.decision.desired)
        return best, Direction.OUT
    tracking = [v for v in votes if v is not None and v.tracking]
    if any(v.decision.held == "no alarm" for v in tracking):
        return None
    ins = [v for v in real if v.decision.direction == Direction.IN]
    if not ins:
        return None
    return max(ins, key=lambda v: v.decision.desired), Direction.IN
