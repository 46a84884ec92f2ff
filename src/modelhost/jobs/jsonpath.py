"""The JSONPath subset SageMaker's DataProcessing filters accept, as pure functions.

Supported (reference, DataProcessing): `$`, `.name`, `.*` and `[*]`, `['a','b']`,
`[i,j]` with negative indexes, and `[start:end]` slices whose end is *inclusive*, as
SageMaker documents (`$[1:4]` is the 2nd to the 5th column). One selector in brackets
picks the element itself; several (or a slice) build a list, or an object for names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MAX_LENGTH = 63


class JSONPathError(ValueError):
    """The expression is outside the supported subset, or does not fit a record."""


@dataclass(frozen=True)
class Slice:
    start: int | None
    end: int | None  # inclusive


Selector = str | int | Slice


@dataclass(frozen=True)
class Step:
    """One path step: `selectors` None means `*`; `multi` says whether the step builds a
    collection (several selectors, a slice or `*`) rather than picking one element."""

    selectors: tuple[Selector, ...] | None
    multi: bool


_NAME = re.compile(r"\.([A-Za-z_][\w-]*|\*)")
_ITEM = re.compile(
    r"\s*(?:'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"|(-?\d*)\s*(:)\s*(-?\d*)|(-?\d+)|(\*))\s*"
)


def parse(path: str) -> tuple[Step, ...]:
    """Parse `path`; raises JSONPathError naming the unsupported part."""
    if not path.startswith("$"):
        raise JSONPathError(f"JSONPath '{path}' must start with '$'")
    steps: list[Step] = []
    pos = 1
    while pos < len(path):
        m = _NAME.match(path, pos)
        if m:
            name = m.group(1)
            steps.append(Step(None, True) if name == "*" else Step((name,), False))
            pos = m.end()
            continue
        if path[pos] != "[":
            raise JSONPathError(f"JSONPath '{path}': unexpected '{path[pos:]}'")
        close = path.find("]", pos)
        if close < 0:
            raise JSONPathError(f"JSONPath '{path}': '[' without ']'")
        steps.append(_bracket(path, path[pos + 1 : close]))
        pos = close + 1
    return tuple(steps)


def _bracket(path: str, body: str) -> Step:
    if "[" in body:
        raise JSONPathError(f"JSONPath '{path}': nested brackets are not supported")
    selectors: list[Selector] = []
    for part in body.split(","):
        m = _ITEM.fullmatch(part)
        if m is None:
            raise JSONPathError(f"JSONPath '{path}': cannot read selector '{part.strip()}'")
        quoted = m.group(1) if m.group(1) is not None else m.group(2)
        if quoted is not None:
            selectors.append(quoted)
        elif m.group(4):
            start, end = m.group(3), m.group(5)
            selectors.append(Slice(int(start) if start else None, int(end) if end else None))
        elif m.group(6) is not None:
            selectors.append(int(m.group(6)))
        else:
            return Step(None, True)
    multi = len(selectors) > 1 or isinstance(selectors[0], Slice)
    return Step(tuple(selectors), multi)


def evaluate(steps: tuple[Step, ...], value: Any) -> Any:
    """Apply parsed steps to one record; raises JSONPathError if a step does not fit."""
    for step in steps:
        value = _apply(step, value)
    return value


def _apply(step: Step, value: Any) -> Any:
    if step.selectors is None:
        if isinstance(value, dict):
            return list(value.values())
        if isinstance(value, list):
            return list(value)
        raise JSONPathError("'*' applies to an object or an array")
    if not step.multi:
        return _one(step.selectors[0], value)
    if all(isinstance(s, str) for s in step.selectors) and isinstance(value, dict):
        return {s: _one(s, value) for s in step.selectors}
    out: list[Any] = []
    for sel in step.selectors:
        if isinstance(sel, Slice):
            if not isinstance(value, list):
                raise JSONPathError("a slice applies to an array")
            n = len(value)
            start = 0 if sel.start is None else (sel.start + n if sel.start < 0 else sel.start)
            end = n - 1 if sel.end is None else (sel.end + n if sel.end < 0 else sel.end)
            out.extend(value[max(start, 0) : end + 1])
        else:
            out.append(_one(sel, value))
    return out


def _one(sel: Selector, value: Any) -> Any:
    if isinstance(sel, str):
        if not isinstance(value, dict):
            raise JSONPathError(f"'{sel}' applies to an object")
        if sel not in value:
            raise JSONPathError(f"the record has no key '{sel}'")
        return value[sel]
    if isinstance(sel, int):
        if not isinstance(value, list):
            raise JSONPathError(f"index {sel} applies to an array")
        if not -len(value) <= sel < len(value):
            raise JSONPathError(f"index {sel} is out of range for {len(value)} columns")
        return value[sel]
    raise JSONPathError("a slice applies to an array")
