"""The recommender's search, pure: which configuration to measure next.

A space is a list of families (one per instance type of an Advanced job), each a grid over
ordered axes (worker counts, batching settings, instance counts: an EndpointConfiguration's
EnvironmentParameterRanges). An exhaustive search measures every point; this one measures
the most informative first and skips the rest once they cannot help:

1. per family, the two extremes of the grid (every axis at its lowest, at its highest);
2. then, best first, bisection midpoints between a measured point that meets the latency
   thresholds and one that does not (the threshold lies between them), and the grid
   neighbours of the promising points (those meeting the thresholds within `slack` of the
   cheapest, overall and in their family), but not up an axis whose cost rises (more
   instances: costlier, so dominated for the cheapest pick), nor of a point another of
   its family dominates (as cheap and faster); a family with no point meeting them yet
   descends from its lowest-latency point until no neighbour is lower;
3. a point is skipped when a measured point of its family that broke the thresholds has
   every axis at least as favourable to latency (`latency_falls` says which direction that
   is per axis); points dominated by a measured one (costlier and slower) are never
   expanded, so their neighbourhoods are not measured.

A configuration that breaks its latency threshold is stopped early by the measurement
itself (recommender.py's ThresholdWatch); it comes back as `Measurement(meets=False)`.
The result is the Pareto front of cost per inference vs p99 latency over what was
measured and the cheapest point meeting the thresholds. The stepper (`Search.next` /
`Search.record`) lets an async runner drive it; `search` runs it with a plain measurement
function. Ties are broken by the injected random source, so a seeded run is reproducible.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

Levels = tuple[int, ...]


@dataclass(frozen=True)
class Axis:
    """One ordered axis of a family's grid. `latency_falls` is +1 when a higher value lowers
    latency (instances), -1 when it raises it, 0 when unknown (workers beyond the vCPUs
    contend; a bigger batch waits longer but queues less)."""

    name: str
    values: tuple[str, ...]
    latency_falls: int = 0
    cost_rises: bool = False  # a higher value costs more per hour (instance count)


@dataclass(frozen=True)
class Family:
    """The grid of one instance type."""

    instance_type: str
    axes: tuple[Axis, ...] = ()

    def points(self) -> Iterator[Levels]:
        def walk(prefix: Levels, rest: tuple[Axis, ...]) -> Iterator[Levels]:
            if not rest:
                yield prefix
                return
            for i in range(len(rest[0].values)):
                yield from walk((*prefix, i), rest[1:])

        return walk((), self.axes)

    def size(self) -> int:
        n = 1
        for axis in self.axes:
            n *= len(axis.values)
        return n


@dataclass(frozen=True)
class Point:
    """A point of the space: a family's index and the index of its value on each axis."""

    family: int
    levels: Levels


@dataclass(frozen=True)
class Measurement:
    """What measuring a point gave: cost per inference (inf when unpriced or no traffic),
    p99 latency, and whether it met the job's thresholds."""

    cost: float
    p99_ms: float
    meets: bool


@dataclass
class SearchResult:
    """Every measurement in the order taken, the Pareto front and the cheapest point that
    meets the thresholds (None when none does)."""

    measured: dict[Point, Measurement | None]
    front: list[Point]
    best: Point | None


def pareto(measured: dict[Point, Measurement | None]) -> list[Point]:
    """The measured points that meet the thresholds and no other such point beats on both
    cost per inference and p99 latency, cheapest first."""
    ok = [(p, m) for p, m in measured.items() if m is not None and m.meets]
    front = [
        p
        for p, m in ok
        if not any(
            o.cost <= m.cost and o.p99_ms <= m.p99_ms and (o.cost < m.cost or o.p99_ms < m.p99_ms)
            for _q, o in ok
        )
    ]
    return sorted(front, key=lambda p: (_m(measured, p).cost, _m(measured, p).p99_ms))


def cheapest(measured: dict[Point, Measurement | None]) -> Point | None:
    ok = [(m.cost, m.p99_ms, i, p) for i, (p, m) in enumerate(measured.items()) if m and m.meets]
    return min(ok)[3] if ok else None


def _m(measured: dict[Point, Measurement | None], p: Point) -> Measurement:
    m = measured[p]
    assert m is not None
    return m


@dataclass
class Search:
    """The search as a stepper: `next()` names the point to measure (None when done),
    `record()` takes its measurement (None when it could not be measured at all)."""

    families: list[Family]
    rng: random.Random
    slack: float = 0.15
    max_measurements: int | None = None
    measured: dict[Point, Measurement | None] = field(default_factory=dict)
    _seeds: list[Point] = field(default_factory=list)

    def __post_init__(self) -> None:
        # The extremes of every family first, the families interleaved.
        lows = [Point(f, tuple(0 for _ in fam.axes)) for f, fam in enumerate(self.families)]
        highs = [
            Point(f, tuple(len(a.values) - 1 for a in fam.axes))
            for f, fam in enumerate(self.families)
        ]
        self._seeds = list(dict.fromkeys([*lows, *highs]))

    def total(self) -> int:
        return sum(f.size() for f in self.families)

    def record(self, point: Point, measurement: Measurement | None) -> None:
        self.measured[point] = measurement

    def result(self) -> SearchResult:
        return SearchResult(dict(self.measured), pareto(self.measured), cheapest(self.measured))

    def next(self) -> Point | None:
        if self.max_measurements is not None and len(self.measured) >= self.max_measurements:
            return None
        for seed in self._seeds:
            if seed not in self.measured:
                return seed
        candidates = [(s, p) for s, p in self._candidates() if not self._hopeless(p)]
        if not candidates:
            return None
        best = min(score for score, _p in candidates)
        tied = sorted({p for score, p in candidates if score == best}, key=_order)
        return tied[self.rng.randrange(len(tied))]

    # --- candidates -----------------------------------------------------------------------

    def _candidates(self) -> list[tuple[float, Point]]:
        """(score, point): lower scores first; bisection before neighbours."""
        out: list[tuple[float, Point]] = []
        ok = {p: m for p, m in self.measured.items() if m is not None and m.meets}
        broken = [p for p, m in self.measured.items() if m is None or not m.meets]
        for good, good_m in ok.items():
            for bad in broken:
                mid = _midpoint(good, bad)
                if mid is not None and mid not in self.measured:
                    out.append((good_m.cost * 0.5, mid))
        for p in self._promising(ok):
            # Up a cost-rising axis from a point that meets the thresholds is costlier and
            # not needed to meet them: such a point cannot be the cheapest.
            for n in self._neighbours(p, cheaper_only=True):
                if n not in self.measured:
                    out.append((ok[p].cost if p in ok else float("inf"), n))
        families_ok = {p.family for p in ok}
        for f in range(len(self.families)):
            if f not in families_ok:
                out.extend((float("inf"), p) for p in self._descent(f))
        return out

    def _descent(self, family: int) -> list[Point]:
        """A family with no point meeting the thresholds yet: the midpoint of its extremes,
        then the neighbours of its lowest-latency point (a descent that ends when no
        neighbour is lower)."""
        fam = self.families[family]
        low = Point(family, tuple(0 for _ in fam.axes))
        high = Point(family, tuple(len(a.values) - 1 for a in fam.axes))
        out = []
        mid = _midpoint(low, high)
        if mid is not None and mid not in self.measured:
            out.append(mid)
        finite = [
            (m.p99_ms, _order(p), p)
            for p, m in self.measured.items()
            if p.family == family and m is not None and m.p99_ms != float("inf")
        ]
        if finite:
            out.extend(n for n in self._neighbours(min(finite)[2]) if n not in self.measured)
        return out

    def _promising(self, ok: dict[Point, Measurement]) -> list[Point]:
        if not ok:
            return []
        low = min(m.cost for m in ok.values())
        near = [p for p, m in ok.items() if m.cost <= low * (1 + self.slack)]
        # Each family's own cheapest too: one noisy reading must not end a family's descent.
        family_low: dict[int, float] = {}
        for p, m in ok.items():
            family_low[p.family] = min(m.cost, family_low.get(p.family, m.cost))
        own = [p for p, m in ok.items() if m.cost <= family_low[p.family] * (1 + self.slack)]
        # A point another of its family dominates (as cheap and faster) is not expanded.
        return [
            p
            for p in dict.fromkeys([*near, *own])
            if not any(q.family == p.family and _dominates(m, ok[p]) for q, m in ok.items())
        ]

    def _neighbours(self, p: Point, cheaper_only: bool = False) -> Iterator[Point]:
        for i, axis in enumerate(self.families[p.family].axes):
            for step in (-1,) if cheaper_only and axis.cost_rises else (-1, 1):
                v = p.levels[i] + step
                if 0 <= v < len(axis.values):
                    yield Point(p.family, (*p.levels[:i], v, *p.levels[i + 1 :]))

    def _hopeless(self, p: Point) -> bool:
        """A measured point of the same family broke the thresholds while at least as
        favourable to latency on every axis of known direction (and equal on the others)."""
        axes = self.families[p.family].axes
        for q, m in self.measured.items():
            if q.family != p.family or (m is not None and m.meets):
                continue
            if m is None and not axes:
                return True
            if all(_no_better(a, p.levels[i], q.levels[i]) for i, a in enumerate(axes)):
                return True
        return False


def _dominates(a: Measurement, b: Measurement) -> bool:
    return a.cost <= b.cost and a.p99_ms <= b.p99_ms and (a.cost < b.cost or a.p99_ms < b.p99_ms)


def _no_better(axis: Axis, mine: int, theirs: int) -> bool:
    """Whether level `mine` is no more favourable to latency than `theirs` on `axis`."""
    if axis.latency_falls > 0:
        return mine <= theirs
    if axis.latency_falls < 0:
        return mine >= theirs
    return mine == theirs


def _midpoint(a: Point, b: Point) -> Point | None:
    """The grid point halfway between two points of a family (None when adjacent)."""
    if a.family != b.family:
        return None
    # Rounded toward `a` (the point that meets the thresholds) on every axis.
    pairs = zip(a.levels, b.levels, strict=True)
    mid = tuple((x + y) // 2 if x <= y else (x + y + 1) // 2 for x, y in pairs)
    if mid in (a.levels, b.levels):
        return None
    return Point(a.family, mid)


def _order(p: Point) -> tuple[int, Levels]:
    return (p.family, p.levels)


def search(
    families: list[Family],
    measure: Callable[[Point], Measurement | None],
    rng: random.Random,
    *,
    slack: float = 0.15,
    max_measurements: int | None = None,
) -> SearchResult:
    """Run the search with a measurement function (see the module docstring)."""
    stepper = Search(families, rng, slack, max_measurements)
    while (point := stepper.next()) is not None:
        stepper.record(point, measure(point))
    return stepper.result()


def exhaustive(
    families: list[Family], measure: Callable[[Point], Measurement | None]
) -> SearchResult:
    """Measure every point (the baseline the search is compared with)."""
    measured: dict[Point, Measurement | None] = {
        Point(f, lv): None for f, fam in enumerate(families) for lv in fam.points()
    }
    for p in measured:
        measured[p] = measure(p)
    return SearchResult(measured, pareto(measured), cheapest(measured))
