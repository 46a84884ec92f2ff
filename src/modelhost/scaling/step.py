"""Step scaling, as Application Auto Scaling runs it when a CloudWatch alarm fires.

The breach is the metric minus the alarm's threshold. Each StepAdjustment covers an
interval of breaches: above the threshold the lower bound is inclusive and the upper
exclusive, below it the lower is exclusive and the upper inclusive; a missing bound is
infinite. The matching step's ScalingAdjustment changes the capacity by AdjustmentType:
ChangeInCapacity adds it, ExactCapacity sets it, PercentChangeInCapacity adds that percent
of the current capacity (a result between -1 and 1 rounds away from zero, others toward
zero; MinAdjustmentMagnitude is the smallest change it may make). MetricAggregationType
(Average, Minimum, Maximum) folds the alarm's datapoints into the one metric value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from modelhost.scaling.decisions import (
    CooldownState,
    Decision,
    Direction,
    Limits,
    apply_cooldown,
)

DEFAULT_COOLDOWN_S = 300.0
AGGREGATIONS: dict[str, Callable[[list[float]], float]] = {
    "Average": lambda v: sum(v) / len(v),
    "Minimum": min,
    "Maximum": max,
}


@dataclass(frozen=True)
class Step:
    lower: float | None
    upper: float | None
    adjustment: int

    def covers(self, breach: float) -> bool:
        lower = -math.inf if self.lower is None else self.lower
        upper = math.inf if self.upper is None else self.upper
        if breach >= 0:
            return lower <= breach < upper
        return lower < breach <= upper


@dataclass(frozen=True)
class StepScaling:
    """A StepScalingPolicyConfiguration."""

    adjustment_type: str
    steps: tuple[Step, ...]
    min_adjustment_magnitude: int | None = None
    cooldown_s: float = DEFAULT_COOLDOWN_S
    aggregation: str = "Average"

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> StepScaling:
        steps = tuple(
            Step(
                s.get("MetricIntervalLowerBound"),
                s.get("MetricIntervalUpperBound"),
                int(s["ScalingAdjustment"]),
            )
            for s in spec.get("StepAdjustments") or []
        )
        magnitude = spec.get("MinAdjustmentMagnitude")
        return cls(
            adjustment_type=str(spec.get("AdjustmentType", "ChangeInCapacity")),
            steps=steps,
            min_adjustment_magnitude=None if magnitude is None else int(magnitude),
            cooldown_s=float(spec.get("Cooldown", DEFAULT_COOLDOWN_S)),
            aggregation=str(spec.get("MetricAggregationType", "Average")),
        )


def percent_change(current: int, percent: int, min_magnitude: int | None) -> int:
    """PercentChangeInCapacity's change in instances, rounded as AWS documents."""
    raw = current * percent / 100.0
    # Between -1 and 1 away from zero (at least one instance), otherwise toward zero.
    change = (1 if raw > 0 else -1) if 0 < abs(raw) < 1 else math.trunc(raw)
    if min_magnitude is not None and 0 < abs(change) < min_magnitude:
        change = min_magnitude if change > 0 else -min_magnitude
    return change


def adjusted(policy: StepScaling, current: int, adjustment: int) -> int:
    if policy.adjustment_type == "ExactCapacity":
        return adjustment
    if policy.adjustment_type == "PercentChangeInCapacity":
        return current + percent_change(current, adjustment, policy.min_adjustment_magnitude)
    return current + adjustment


def step_decision(
    policy: StepScaling,
    values: Sequence[float],
    threshold: float,
    limits: Limits,
    cooldown: CooldownState,
    now: float,
    period_s: float = 60.0,
) -> Decision | None:
    """The decision when the alarm is in ALARM with datapoints `values`; None when no step
    covers the breach or the capacity would not change."""
    if not values:
        return None
    value = AGGREGATIONS.get(policy.aggregation, AGGREGATIONS["Average"])(list(values))
    breach = value - threshold
    step = next((s for s in policy.steps if s.covers(breach)), None)
    if step is None:
        return None
    desired = limits.clamp(adjusted(policy, limits.current, step.adjustment))
    if desired == limits.current:
        return None
    direction = Direction.OUT if desired > limits.current else Direction.IN
    base = cooldown.out_base
    recompute = None if base is None else limits.clamp(adjusted(policy, base, step.adjustment))
    cooldown_s = policy.cooldown_s * period_s / 60.0
    return apply_cooldown(
        Decision(direction, desired), limits, cooldown, cooldown_s, cooldown_s, now, recompute
    )
