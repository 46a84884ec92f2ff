"""`modelhost metrics`: durations, periods and sparklines (the API part is tested e2e in
tests/gateway/test_cloudwatch_e2e.py)."""

from __future__ import annotations

import click
import pytest

from modelhost.cli.metrics import parse_since, period_for, sparkline


def test_parse_since() -> None:
    assert parse_since("90s") == 90 and parse_since("10m") == 600
    assert parse_since("3h") == 10800 and parse_since("1d") == 86400 and parse_since("45") == 45
    for bad in ("", "0m", "ten minutes", "5w"):
        with pytest.raises(click.BadParameter):
            parse_since(bad)


def test_period_for_gives_cloudwatch_periods() -> None:
    assert period_for(30) == 1 and period_for(600) == 30 and period_for(1800) == 60
    assert period_for(86400) == 2880 and period_for(86400) % 60 == 0


def test_sparkline() -> None:
    assert sparkline([]) == "" and sparkline([None]) == ""
    assert sparkline([0.0, 1.0, None, 7.0]) == "▁▂ █"
    assert sparkline([5.0, 5.0]) == "▁▁"
