"""When schedules run and what they analyze: pure functions, no processes."""

from __future__ import annotations

import pytest

from modelhost.errors import ValidationException
from modelhost.monitor.schedule import (
    Cadence,
    cron_window,
    due_slot,
    now_window,
    parse_expression,
    parse_offset,
)


def test_expressions() -> None:
    assert parse_expression("NOW") == Cadence(now=True)
    assert parse_expression("cron(0 * ? * * *)") == Cadence(hour=0, every=1)
    assert parse_expression("cron(0 5 ? * * *)") == Cadence(hour=5, every=24)
    assert parse_expression("cron(0 2/6 ? * * *)") == Cadence(hour=2, every=6)
    for bad in ("cron(15 * ? * * *)", "cron(0 25 ? * * *)", "rate(1 hour)", "cron(0 1/0 ? * * *)"):
        with pytest.raises(ValidationException, match="ScheduleExpression"):
            parse_expression(bad)


def test_hourly_runs_once_per_slot_over_the_slot_before() -> None:
    hourly = parse_expression("cron(0 * ? * * *)")
    assert due_slot(hourly, 10.5 * 4, 4.0, last_slot=9) == 10
    assert due_slot(hourly, 10.9 * 4, 4.0, last_slot=10) is None
    assert cron_window(hourly, 10, 4.0) == (36.0, 40.0)


def test_daily_and_every_n_hours() -> None:
    daily = parse_expression("cron(0 5 ? * * *)")
    assert due_slot(daily, 5 * 3600 + 10, 3600.0, last_slot=0) == 5
    assert due_slot(daily, 6 * 3600 + 10, 3600.0, last_slot=0) is None
    assert due_slot(daily, (24 + 5) * 3600, 3600.0, last_slot=5) == 29
    assert cron_window(daily, 29, 3600.0) == (5 * 3600.0, 29 * 3600.0)
    every6 = parse_expression("cron(0 2/6 ? * * *)")
    assert [s for s in range(24) if due_slot(every6, s * 3600.0, 3600.0, -1) is not None] == [
        2,
        8,
        14,
        20,
    ]


def test_now_windows_and_offsets() -> None:
    assert parse_offset("-PT1H30M", 0) == -5400
    assert parse_offset("-PT0H", 1) == 0
    assert parse_offset(None, -3600) == -3600
    assert now_window(10_000.0, "-PT1H", "-PT0H") == (6400.0, 10_000.0)
    with pytest.raises(ValidationException):
        now_window(10_000.0, "-PT0H", "-PT1H")
    with pytest.raises(ValidationException):
        parse_offset("PT1H", 0)
