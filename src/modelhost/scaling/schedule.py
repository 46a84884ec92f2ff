"""Scheduled actions: when `at()`, `rate()` and `cron()` schedules fire.

`at(yyyy-mm-ddThh:mm:ss)` fires once; `rate(value unit)` every value minutes, hours or
days from the action's StartTime (or its creation); `cron(min hour day-of-month month
day-of-week year)` as EventBridge reads it (day-of-week 1-7 is SUN-SAT, `?` means any),
evaluated by croniter. `at` and `cron` read the clock in the action's Timezone (IANA
name, UTC by default). All functions are pure: the caller passes the times.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from modelhost.errors import ValidationException

_AT = re.compile(r"at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)")
_RATE = re.compile(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)")
_CRON = re.compile(r"cron\(([^)]*)\)")
_UNIT_S = {"minute": 60, "hour": 3600, "day": 86400}
_DOW_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: exactly one of `at_s`, `every_s` and `cron` is set."""

    text: str
    zone: ZoneInfo
    at_s: float | None = None
    every_s: float | None = None
    cron: str | None = None
    years: str = "*"


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationException(f"Timezone {name!r} is not a valid IANA time zone.") from exc


def _dow(field: str) -> str:
    """EventBridge numbers days 1-7 from Sunday, croniter 0-6: rewrite numbers as names."""
    return re.sub(r"(?<![#\d])([1-7])(?!\d)", lambda m: _DOW_NAMES[int(m.group(1)) - 1], field)


def parse(text: str, timezone: str | None = None) -> Schedule:
    """Parse a Schedule member; ValidationException names the rule it breaks."""
    tz = zone(timezone)
    if m := _AT.fullmatch(text):
        when = dt.datetime.fromisoformat(m.group(1)).replace(tzinfo=tz)
        return Schedule(text, tz, at_s=when.timestamp())
    if m := _RATE.fullmatch(text):
        value, unit = int(m.group(1)), m.group(2).rstrip("s")
        if value < 1:
            raise ValidationException(f"Schedule {text}: the rate must be at least 1.")
        return Schedule(text, tz, every_s=float(value * _UNIT_S[unit]))
    if m := _CRON.fullmatch(text):
        fields = m.group(1).split()
        if len(fields) != 6:
            raise ValidationException(
                f"Schedule {text}: a cron expression has 6 fields (minutes hours "
                "day-of-month month day-of-week year)."
            )
        minute, hour, dom, month, dow, year = fields
        if "?" not in (dom, dow):
            raise ValidationException(
                f"Schedule {text}: one of day-of-month and day-of-week must be '?'."
            )
        expr = " ".join([minute, hour, dom.replace("?", "*"), month, _dow(dow).replace("?", "*")])
        if not croniter.is_valid(expr):
            raise ValidationException(f"Schedule {text} is not a valid cron expression.")
        return Schedule(text, tz, cron=expr, years=year)
    raise ValidationException(
        f"Schedule {text!r} must be at(yyyy-mm-ddThh:mm:ss), rate(value unit) or cron(fields)."
    )


def _year_ok(years: str, year: int) -> bool:
    if years in ("*", "?"):
        return True
    for part in years.split(","):
        low, _, high = part.partition("-")
        if low.isdigit() and int(low) <= year <= int(high or low):
            return True
    return False


def fires_between(schedule: Schedule, after_s: float, until_s: float, origin_s: float) -> bool:
    """Whether the schedule fires in (after_s, until_s]; `origin_s` anchors rate()."""
    if schedule.at_s is not None:
        return after_s < schedule.at_s <= until_s
    if schedule.every_s is not None:
        if until_s < origin_s:
            return False
        k = int((until_s - origin_s) // schedule.every_s)
        return after_s < origin_s + k * schedule.every_s <= until_s
    assert schedule.cron is not None
    start = dt.datetime.fromtimestamp(after_s, schedule.zone)
    nxt = croniter(schedule.cron, start).get_next(dt.datetime)
    return nxt.timestamp() <= until_s and _year_ok(schedule.years, nxt.year)


def last_fire(schedule: Schedule, after_s: float, until_s: float, origin_s: float) -> float | None:
    """The latest time in (after_s, until_s] the schedule fires, or None; `origin_s`
    anchors rate(). Used to catch up on actions missed while the gateway was down."""
    if schedule.at_s is not None:
        return schedule.at_s if after_s < schedule.at_s <= until_s else None
    if schedule.every_s is not None:
        if until_s < origin_s:
            return None
        k = int((until_s - origin_s) // schedule.every_s)
        fired = origin_s + k * schedule.every_s
        return fired if fired > after_s else None
    assert schedule.cron is not None
    # croniter steps back from a whole second after `until_s` so a fire at it counts.
    start = dt.datetime.fromtimestamp(int(until_s) + 1, schedule.zone)
    it = croniter(schedule.cron, start)
    while True:
        prev: dt.datetime = it.get_prev(dt.datetime)
        t = prev.timestamp()
        if t <= after_s:
            return None
        if t <= until_s and _year_ok(schedule.years, prev.year):
            return t
