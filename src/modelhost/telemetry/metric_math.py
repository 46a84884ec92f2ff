"""GetMetricData's metric math: arithmetic, `METRICS()` and the aggregate functions.

An expression evaluates to a number, a time series (`{timestamp: value}`) or a list of
series (`METRICS()`, `[m1, m2]`). Arithmetic works element-wise on timestamps both sides
have; a number broadcasts. `SUM`, `AVG`, `MIN`, `MAX` of a list combine its series per
timestamp, of one series give a number. Parsing is a small recursive descent over the
grammar: expr = term {(+|-) term}; term = unary {(*|/) unary}; unary = [-] atom; atom =
number | id | FUNC(args) | (expr) | [expr, ...].
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Union

from modelhost.errors import InvalidParameterValue

Series = dict[int, float]
Value = Union[float, Series, list[Series]]  # noqa: UP007 (a runtime alias)

_TOKEN = re.compile(r"\s*(?:(\d+\.?\d*(?:[eE][-+]?\d+)?)|([A-Za-z_]\w*)|(\"[^\"]*\")|(.))")
_AGGREGATES: dict[str, Callable[[list[float]], float]] = {
    "SUM": sum,
    "AVG": lambda xs: sum(xs) / len(xs),
    "MIN": min,
    "MAX": max,
}


def _tokens(text: str) -> list[str]:
    out = []
    for number, name, string, other in _TOKEN.findall(text):
        token = number or name or string or other
        if token.strip():
            out.append(token)
    return out


def _combine(a: Value, b: Value, op: Callable[[float, float], float]) -> Value:
    if isinstance(a, list):
        return [_combine(x, b, op) for x in a]  # type: ignore[misc]
    if isinstance(b, list):
        return [_combine(a, y, op) for y in b]  # type: ignore[misc]
    if isinstance(a, dict) and isinstance(b, dict):
        return {t: _safe(op, a[t], b[t]) for t in sorted(a.keys() & b.keys())}
    if isinstance(a, dict):
        return {t: _safe(op, v, float(b)) for t, v in a.items()}  # type: ignore[arg-type]
    if isinstance(b, dict):
        return {t: _safe(op, float(a), v) for t, v in b.items()}
    return _safe(op, float(a), float(b))


def _safe(op: Callable[[float, float], float], x: float, y: float) -> float:
    try:
        return op(x, y)
    except ZeroDivisionError:
        return float("nan")


def _aggregate(name: str, value: Value) -> Value:
    fn = _AGGREGATES[name]
    if isinstance(value, list):
        stamps = sorted(set().union(*(s.keys() for s in value))) if value else []
        return {t: fn([s[t] for s in value if t in s]) for t in stamps}
    if isinstance(value, dict):
        return fn(list(value.values())) if value else float("nan")
    return value


class _Parser:
    def __init__(self, text: str, series: dict[str, Series]) -> None:
        self.tokens = _tokens(text)
        self.pos = 0
        self.series = series
        self.text = text

    def fail(self, why: str) -> InvalidParameterValue:
        return InvalidParameterValue(f"Error in expression '{self.text}': {why}.")

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise self.fail(f"expected {expected or 'more input'}, found {token or 'the end'}")
        self.pos += 1
        return token

    def parse(self) -> Value:
        value = self.expr()
        if self.peek() is not None:
            raise self.fail(f"unexpected '{self.peek()}'")
        return value

    def expr(self) -> Value:
        value = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            right = self.term()
            value = _combine(
                value, right, (lambda x, y: x + y) if op == "+" else (lambda x, y: x - y)
            )
        return value

    def term(self) -> Value:
        value = self.unary()
        while self.peek() in ("*", "/"):
            op = self.take()
            right = self.unary()
            value = _combine(
                value, right, (lambda x, y: x * y) if op == "*" else (lambda x, y: x / y)
            )
        return value

    def unary(self) -> Value:
        if self.peek() == "-":
            self.take()
            return _combine(-1.0, self.atom(), lambda x, y: x * y)
        return self.atom()

    def atom(self) -> Value:
        token = self.take()
        if token == "(":
            value = self.expr()
            self.take(")")
            return value
        if token == "[":
            items: list[Series] = []
            while True:
                item = self.expr()
                items.extend(item if isinstance(item, list) else [item])  # type: ignore[list-item]
                if self.take() == "]":
                    return items
        if token[0].isdigit():
            return float(token)
        if token.upper() in (*_AGGREGATES, "METRICS") and self.peek() == "(":
            return self.call(token.upper())
        if token in self.series:
            return dict(self.series[token])
        raise self.fail(f"unknown metric id or function '{token}'")

    def call(self, name: str) -> Value:
        self.take("(")
        if name == "METRICS":
            needle = ""
            if self.peek() not in (")", None):
                needle = self.take().strip('"')
            self.take(")")
            return [dict(s) for i, s in self.series.items() if needle in i]
        arg = self.expr()
        self.take(")")
        return _aggregate(name, arg)


def evaluate(expression: str, series: dict[str, Series]) -> Value:
    """The value of `expression` with `series` (query id → series) in scope."""
    if not expression.strip():
        raise InvalidParameterValue("Expression must not be empty.")
    return _Parser(expression, series).parse()
