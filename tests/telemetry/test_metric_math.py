"""Metric math: arithmetic, METRICS() and aggregates over aligned timestamps."""

from __future__ import annotations

import pytest

from modelhost.errors import InvalidParameterValue
from modelhost.telemetry.metric_math import evaluate

SERIES = {"m1": {0: 1.0, 60: 2.0}, "m2": {0: 10.0, 60: 20.0, 120: 30.0}}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("m1 + m2", {0: 11.0, 60: 22.0}),
        ("m1 + m2 * 2", {0: 21.0, 60: 42.0}),
        ("(m1 + m2) / 2", {0: 5.5, 60: 11.0}),
        ("100 * m1 / m2", {0: 10.0, 60: 10.0}),
        ("-m1", {0: -1.0, 60: -2.0}),
        ("SUM(METRICS())", {0: 11.0, 60: 22.0, 120: 30.0}),
        ("SUM([m1, m2])", {0: 11.0, 60: 22.0, 120: 30.0}),
        ('MAX(METRICS("m2"))', {0: 10.0, 60: 20.0, 120: 30.0}),
        ("AVG(m2)", 20.0),
        ("2 * 3", 6.0),
    ],
)
def test_expressions(expression: str, expected: object) -> None:
    assert evaluate(expression, SERIES) == expected


def test_metrics_is_a_list_and_division_by_zero_is_nan() -> None:
    assert evaluate("METRICS()", SERIES) == [SERIES["m1"], SERIES["m2"]]
    value = evaluate("m1 / 0", SERIES)
    assert isinstance(value, dict) and all(v != v for v in value.values())


@pytest.mark.parametrize("bad", ["m3", "m1 +", "SUM(m1", "", "m1 ) "])
def test_bad_expressions_name_the_problem(bad: str) -> None:
    with pytest.raises(InvalidParameterValue):
        evaluate(bad, SERIES)
