"""Line and scatter charts as inline SVG, generated in Python.

Reports embed them, so a report is one self-contained file that needs no network (and no
JavaScript) to view. Small on purpose: axes with a few ticks, one polyline per series, a
legend.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from html import escape

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2")
WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 28, 36

Point = tuple[float, float]


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About `count` round tick values covering [low, high]."""
    if not math.isfinite(low) or not math.isfinite(high):
        return [0.0]
    if high <= low:
        high = low + 1.0
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 10))
    return ticks


def _fmt(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 or value == int(value) else f"{value:.3g}"


def _axes(xt: list[float], yt: list[float], sx: object, sy: object, x_label: str) -> list[str]:
    assert callable(sx) and callable(sy)
    out = []
    for y in yt:
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" '
            'stroke="#ddd"/>'
            f'<text x="{LEFT - 4}" y="{sy(y) + 4:.1f}" text-anchor="end">{_fmt(y)}</text>'
        )
    for x in xt:
        out.append(
            f'<text x="{sx(x):.1f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="middle">'
            f"{_fmt(x)}</text>"
        )
    out.append(
        f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 6}" text-anchor="middle">'
        f"{escape(x_label)}</text>"
    )
    return out


def chart(
    title: str,
    series: Mapping[str, Sequence[Point]],
    *,
    x_label: str = "seconds",
    lines: bool | Collection[str] = True,
    x_range: tuple[float, float] | None = None,
) -> str:
    """One SVG chart: `series` maps a legend label to its (x, y) points, drawn as a line
    (`lines` True, or the labels in `lines`) or as dots; `x_range` (shared by the charts of one
    report) drops the points outside it."""
    if x_range is not None:
        series = {k: [p for p in v if x_range[0] <= p[0] <= x_range[1]] for k, v in series.items()}
    points = [p for values in series.values() for p in values if p[1] is not None]
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="11">'
        f'<text x="{LEFT}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>'
    )
    if not points:
        return head + f'<text x="{LEFT}" y="{HEIGHT / 2}">no data</text></svg>'
    xs = [p[0] for p in points]
    xt = nice_ticks(*(x_range or (min(xs), max(xs))))
    yt = nice_ticks(min(0.0, min(p[1] for p in points)), max(p[1] for p in points))

    def sx(x: float) -> float:
        return LEFT + (x - xt[0]) / ((xt[-1] - xt[0]) or 1.0) * (WIDTH - LEFT - RIGHT)

    def sy(y: float) -> float:
        return HEIGHT - BOTTOM - (y - yt[0]) / ((yt[-1] - yt[0]) or 1.0) * (HEIGHT - TOP - BOTTOM)

    body = _axes(xt, yt, sx, sy, x_label)
    for i, (label, values) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        coords = [(sx(x), sy(y)) for x, y in values if y is not None]
        as_line = lines is True or (not isinstance(lines, bool) and label in lines)
        if as_line and len(coords) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            body.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{path}"/>'
            )
        else:
            body.extend(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>' for x, y in coords
            )
        lx = WIDTH - RIGHT - 150
        ly = TOP + 4 + 14 * i
        body.append(
            f'<rect x="{lx}" y="{ly - 8}" width="10" height="3" fill="{color}"/>'
            f'<text x="{lx + 14}" y="{ly - 4}">{escape(label)}</text>'
        )
    return head + "".join(body) + "</svg>"
