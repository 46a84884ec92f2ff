"""Target tracking, as Application Auto Scaling runs it, as a pure function.

AWS creates two alarms for a target-tracking policy: a high one (the metric above the
target for 3 consecutive one-minute datapoints) that scales out, and a low one (below 90 %
of the target for 15 datapoints) that scales in unless `DisableScaleIn`. Either way the new
capacity is ceil(current × metric / target), within MinCapacity and MaxCapacity, subject
to the cooldowns (`decisions.apply_cooldown`). Here a "minute" is one evaluation period
(`scaling_period_s`, 60 s by default), so tests and demos run the same rules in seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from modelhost.scaling.decisions import (
    CooldownState,
    Decision,
    Direction,
    Limits,
    apply_cooldown,
    ceil_ratio,
)

OUT_DATAPOINTS = 3
IN_DATAPOINTS = 15
IN_THRESHOLD = 0.9
DEFAULT_COOLDOWN_S = 300.0


@dataclass(frozen=True)
class TargetTracking:
    """A TargetTrackingScalingPolicyConfiguration, with cooldowns in seconds of AWS time."""

    target_value: float
    scale_out_cooldown_s: float = DEFAULT_COOLDOWN_S
    scale_in_cooldown_s: float = DEFAULT_COOLDOWN_S
    disable_scale_in: bool = False

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> TargetTracking:
        return cls(
            target_value=float(spec["TargetValue"]),
            scale_out_cooldown_s=float(spec.get("ScaleOutCooldown", DEFAULT_COOLDOWN_S)),
            scale_in_cooldown_s=float(spec.get("ScaleInCooldown", DEFAULT_COOLDOWN_S)),
            disable_scale_in=bool(spec.get("DisableScaleIn", False)),
        )


def _breaching(points: Sequence[float | None], n: int, test: Any) -> float | None:
    """The latest value when the last `n` datapoints all exist and pass `test`."""
    last = list(points[-n:])
    if len(last) < n or any(p is None or not test(p) for p in last):
        return None
    value = last[-1]
    assert value is not None
    return value


def track(
    policy: TargetTracking,
    datapoints: Sequence[float | None],
    limits: Limits,
    cooldown: CooldownState,
    now: float,
    period_s: float = 60.0,
) -> Decision | None:
    """The decision for the datapoints (oldest first, one per period; None = missing), or
    None when neither alarm fires. Cooldowns are AWS seconds scaled by period_s / 60."""
    target = policy.target_value
    scale = period_s / 60.0
    high = _breaching(datapoints, OUT_DATAPOINTS, lambda v: v > target)
    if high is not None:
        desired = limits.clamp(ceil_ratio(limits.current, high, target))
        if desired <= limits.current:
            return None
        base = cooldown.out_base
        recompute = None if base is None else ceil_ratio(base, high, target)
        return apply_cooldown(
            Decision(Direction.OUT, desired),
            limits,
            cooldown,
            policy.scale_out_cooldown_s * scale,
            policy.scale_in_cooldown_s * scale,
            now,
            recompute,
        )
    low = _breaching(datapoints, IN_DATAPOINTS, lambda v: v < target * IN_THRESHOLD)
    if low is None or policy.disable_scale_in:
        return None
    desired = limits.clamp(ceil_ratio(limits.current, low, target))
    if desired >= limits.current:
        return None
    return apply_cooldown(
        Decision(Direction.IN, desired),
        limits,
        cooldown,
        policy.scale_out_cooldown_s * scale,
        policy.scale_in_cooldown_s * scale,
        now,
    )
