"""What the policies share: capacity limits, cooldown state and one scaling decision.

Application Auto Scaling's cooldowns, as AWS documents them: after a scale-out, the
capacity it added counts as part of the next scale-out while `ScaleOutCooldown` runs (so
only a larger need scales out again); a scale-in waits out `ScaleInCooldown` after the
last scale-in; a scale-out is never held back by a scale-in cooldown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class Direction(StrEnum):
    OUT = "out"
    IN = "in"


@dataclass(frozen=True)
class Limits:
    """A scalable target's MinCapacity and MaxCapacity and its current capacity."""

    minimum: int
    maximum: int
    current: int

    def clamp(self, desired: int) -> int:
        return max(self.minimum, min(self.maximum, desired))


@dataclass
class CooldownState:
    """When the target last scaled each way, and the capacity before the last scale-out
    (the base the next scale-out inside its cooldown is computed from)."""

    last_out_s: float | None = None
    last_in_s: float | None = None
    out_base: int | None = None

    def to_spec(self) -> dict[str, float | int | None]:
        return {"LastOut": self.last_out_s, "LastIn": self.last_in_s, "OutBase": self.out_base}

    @classmethod
    def from_spec(cls, spec: dict[str, float | int | None] | None) -> CooldownState:
        spec = spec or {}
        base = spec.get("OutBase")
        last_out, last_in = spec.get("LastOut"), spec.get("LastIn")
        return cls(
            None if last_out is None else float(last_out),
            None if last_in is None else float(last_in),
            None if base is None else int(base),
        )

    def in_out_cooldown(self, cooldown_s: float, now: float) -> bool:
        return self.last_out_s is not None and now < self.last_out_s + cooldown_s

    def record(self, direction: Direction, before: int, now: float, out_cooldown_s: float) -> None:
        """A scaling activity from `before` happened at `now`."""
        if direction == Direction.OUT:
            if not (self.in_out_cooldown(out_cooldown_s, now) and self.out_base is not None):
                self.out_base = before
            self.last_out_s = now
        else:
            self.last_in_s = now
            self.out_base = None


@dataclass(frozen=True)
class Decision:
    """Set the capacity to `desired` (already within the limits), or why not (`held`)."""

    direction: Direction
    desired: int
    held: str | None = None


def ceil_ratio(capacity: int, metric: float, target: float) -> int:
    """desired = ceil(capacity × metric / target), Application Auto Scaling's formula.
    Rounded to 9 places first so 2 × 0.35 / 0.7 stays 1, not 2."""
    return math.ceil(round(capacity * metric / target, 9))


def apply_cooldown(
    decision: Decision,
    limits: Limits,
    state: CooldownState,
    out_cooldown_s: float,
    in_cooldown_s: float,
    now: float,
    recompute: int | None = None,
) -> Decision:
    """Hold `decision` back if a cooldown says so. `recompute` is the desired capacity
    computed from the capacity before the last scale-out (`state.out_base`); inside the
    scale-out cooldown, only a scale-out above the current capacity from that base goes."""
    if decision.direction == Direction.OUT:
        if state.in_out_cooldown(out_cooldown_s, now):
            assert state.last_out_s is not None
            wanted = limits.clamp(recompute if recompute is not None else decision.desired)
            if wanted <= limits.current:
                left = state.last_out_s + out_cooldown_s - now
                held = f"scale-out cooldown ({left:.0f} s left)"
                return Decision(decision.direction, limits.current, held)
            return Decision(decision.direction, wanted)
        return decision
    if state.last_in_s is not None and now < state.last_in_s + in_cooldown_s:
        left = state.last_in_s + in_cooldown_s - now
        return Decision(
            decision.direction, limits.current, f"scale-in cooldown ({left:.0f} s left)"
        )
    return decision
