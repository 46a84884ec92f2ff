"""When a monitoring schedule runs and which data each run analyzes, as pure functions.

SageMaker's schedule expressions: `cron(0 * ? * * *)` (hourly), `cron(0 H ? * * *)`
(daily at hour H, UTC), `cron(0 H/N ? * * *)` (every N hours from hour H), and `NOW` (one
run at once, over DataAnalysisStartTime..DataAnalysisEndTime, offsets such as `-PT1H`).

Time is cut into slots of `hour_s` seconds (3600; tests shorten it): slot k starts at
k * hour_s, and a cron schedule runs once in every slot its expression matches, over the
slots since its last run (one hour for hourly). A `NOW` run's offsets are real time.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from modelhost.errors import ValidationException

_CRON = re.compile(r"^cron\(0 (\*|\d{1,2})(?:/(\d{1,2}))? \? \* \* \*\)$")
_OFFSET = re.compile(r"^-PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?$")


@dataclass(frozen=True)
class Cadence:
    """A parsed expression: `now`, or every `every` slots starting at slot-of-day `hour`."""

    now: bool = False
    hour: int = 0
    every: int = 1


def parse_expression(expression: str) -> Cadence:
    if expression == "NOW":
        return Cadence(now=True)
    found = _CRON.match(expression)
    if found is None:
        raise ValidationException(
            f"ScheduleConfig.ScheduleExpression {expression!r}: use NOW, cron(0 * ? * * *) "
            "(hourly), cron(0 H ? * * *) (daily at hour H) or cron(0 H/N ? * * *) (every N "
            "hours), as SageMaker does."
        )
    hour_text, every_text = found.group(1), found.group(2)
    if hour_text == "*":
        return Cadence(hour=0, every=int(every_text or 1))
    hour = int(hour_text)
    every = int(every_text) if every_text else 24
    if hour > 23 or not 1 <= every <= 24:
        raise ValidationException(
            f"ScheduleConfig.ScheduleExpression {expression!r}: the hour must be 0-23 and the "
            "interval 1-24 hours."
        )
    return Cadence(hour=hour, every=every)


def parse_offset(text: str | None, default_s: float) -> float:
    """`-PT1H30M` -> -5400.0 (seconds); None -> default."""
    if not text:
        return default_s
    found = _OFFSET.match(text)
    if found is None or not any(found.groups()):
        raise ValidationException(
            f"ScheduleConfig: {text!r} is not a negative ISO 8601 duration such as -PT1H."
        )
    hours, minutes, seconds = (int(g or 0) for g in found.groups())
    return -float(hours * 3600 + minutes * 60 + seconds)


def slot_of(now_s: float, hour_s: float) -> int:
    return math.floor(now_s / hour_s)


def matches(cadence: Cadence, slot: int) -> bool:
    return (slot % 24 - cadence.hour) % cadence.every == 0


def due_slot(cadence: Cadence, now_s: float, hour_s: float, last_slot: int) -> int | None:
    """The slot to run now, or None: the current slot when it matches and is newer than
    the last run's (missed slots are not replayed: one run covers the time since)."""
    if cadence.now:
        return None
    slot = slot_of(now_s, hour_s)
    return slot if slot > last_slot and matches(cadence, slot) else None


def cron_window(cadence: Cadence, slot: int, hour_s: float) -> tuple[float, float]:
    """The data a cron run at `slot` analyzes: the `every` slots before it."""
    return (slot - cadence.every) * hour_s, slot * hour_s


def now_window(now_s: float, start: str | None, end: str | None) -> tuple[float, float]:
    start_s = now_s + parse_offset(start, -3600.0)
    end_s = now_s + parse_offset(end, 0.0)
    if start_s >= end_s:
        raise ValidationException(
            "ScheduleConfig: DataAnalysisStartTime must be before DataAnalysisEndTime."
        )
    return start_s, end_s
