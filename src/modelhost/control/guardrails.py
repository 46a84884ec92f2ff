"""Blue/green traffic shifting as pure decisions (deployment guardrails).

`traffic_steps` turns a `TrafficRoutingConfiguration` into the shares of traffic the new
(green) fleet gets, step by step; the controller applies each share, bakes for
`WaitIntervalInSeconds` while watching the rollback alarms, and rolls everything back
to the old (blue) fleet the moment one of them is in ALARM.
"""

from __future__ import annotations

import math
from typing import Any

from modelhost.errors import ValidationException


def _share(size: dict[str, Any], capacity: int, what: str) -> float:
    value = float(size["Value"])
    # CAPACITY_PERCENT of the new fleet, or INSTANCE_COUNT of its instances.
    share = value / 100.0 if size["Type"] == "CAPACITY_PERCENT" else value / max(capacity, 1)
    if not 0 < share <= 1:
        raise ValidationException(f"{what} must select between 1 instance and 100% of capacity.")
    return share


def traffic_steps(routing: dict[str, Any], green_capacity: int) -> list[float]:
    """The green fleet's share of traffic after each step, ending at 1.0.

    ALL_AT_ONCE → [1.0]; CANARY → [canary, 1.0]; LINEAR → [s, 2s, …, 1.0]."""
    kind = routing["Type"]
    if kind == "ALL_AT_ONCE":
        return [1.0]
    if kind == "CANARY":
        if "CanarySize" not in routing:
            raise ValidationException("CANARY traffic routing needs CanarySize.")
        canary = _share(routing["CanarySize"], green_capacity, "CanarySize")
        return [canary, 1.0] if canary < 1.0 else [1.0]
    if kind == "LINEAR":
        if "LinearStepSize" not in routing:
            raise ValidationException("LINEAR traffic routing needs LinearStepSize.")
        step = _share(routing["LinearStepSize"], green_capacity, "LinearStepSize")
        count = math.ceil(1.0 / step - 1e-9)
        return [min(1.0, step * (i + 1)) for i in range(count)]
    raise ValidationException(f"Unknown traffic routing type {kind}.")


def rollback_alarms(deployment_config: dict[str, Any] | None) -> list[str]:
    alarms = ((deployment_config or {}).get("AutoRollbackConfiguration") or {}).get("Alarms")
    return [a["AlarmName"] for a in alarms or [] if a.get("AlarmName")]


def rolling_batch(size: dict[str, Any], count: int, what: str = "MaximumBatchSize") -> int:
    """Instances replaced per rolling step for a variant of `count` instances.

    SageMaker asks for 5–50% of the variant's capacity; a percentage is rounded up to at
    least one instance, so small local fleets still roll one instance at a time."""
    value = float(size["Value"])
    if size["Type"] == "CAPACITY_PERCENT":
        if not 5 <= value <= 100:
            raise ValidationException(f"{what} as CAPACITY_PERCENT must be between 5 and 100.")
        return max(1, math.ceil(count * value / 100.0 - 1e-9))
    if value < 1:
        raise ValidationException(f"{what} as INSTANCE_COUNT must be at least 1.")
    return int(value)


def rolling_steps(blue: int, green: int, batch: int) -> list[tuple[int, int]]:
    """(green instances, blue instances) after each rolling step, ending at (green, 0).

    Each step first adds up to `batch` new instances, then retires as many old ones, so
    capacity never drops below the smaller of the two fleets while traffic moves."""
    steps = []
    g, b = 0, blue
    while g < green or b > 0:
        g = min(green, g + batch)
        b = max(0, b - batch)
        steps.append((g, b))
    return steps
