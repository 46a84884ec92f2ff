"""An Advanced recommendations job with parameter ranges, searched (loadtest/search.py)
instead of measured in full: the request as the search's families, a point as the
configuration it measures, a benchmark step as the search's measurement.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any

from modelhost.loadtest import recommendation as rules
from modelhost.loadtest.search import Axis, Family, Measurement, Point, Search
from modelhost.resources.status import RecommendationJobStatus as Status

# Axes whose higher values lower latency; others are of unknown direction (more workers
# than vCPUs contend, a bigger batch waits longer but queues less).
_LATENCY_FALLS = ("INSTANCE_COUNT",)


def _ordered(values: list[str]) -> tuple[str, ...]:
    """Values in their natural order: numerically when they are all numbers."""
    unique = list(dict.fromkeys(values))
    try:
        return tuple(sorted(unique, key=float))
    except ValueError:
        return tuple(unique)


def _axes(ranges: dict[str, Any] | None) -> tuple[Axis, ...]:
    """The ranges with more than one value, as ordered axes."""
    out = []
    for r in (ranges or {}).get("CategoricalParameterRanges") or []:
        values = _ordered([str(v) for v in r.get("Value") or []])
        if len(values) > 1:
            name = str(r["Name"])
            rises = name in _LATENCY_FALLS  # more instances: faster and costlier
            out.append(Axis(name, values, 1 if rises else 0, cost_rises=rises))
    return tuple(out)


def _fixed(ranges: dict[str, Any] | None) -> tuple[tuple[str, str], ...]:
    """The ranges with a single value: part of every configuration of the family."""
    return tuple(
        (str(r["Name"]), str(r["Value"][0]))
        for r in (ranges or {}).get("CategoricalParameterRanges") or []
        if len(set(map(str, r.get("Value") or []))) == 1
    )


def families(p: dict[str, Any]) -> list[Family]:
    ecs = (p.get("InputConfig") or {}).get("EndpointConfigurations") or []
    return [Family(ec["InstanceType"], _axes(ec.get("EnvironmentParameterRanges"))) for ec in ecs]


def configuration(p: dict[str, Any], point: Point) -> rules.Configuration:
    """The configuration a point measures, its environment in the ranges' order."""
    ec = p["InputConfig"]["EndpointConfigurations"][point.family]
    ranges = ec.get("EnvironmentParameterRanges")
    chosen = dict(_fixed(ranges))
    for axis, level in zip(_axes(ranges), point.levels, strict=True):
        chosen[axis.name] = axis.values[level]
    order = [str(r["Name"]) for r in (ranges or {}).get("CategoricalParameterRanges") or []]
    env = tuple((k, chosen[k]) for k in dict.fromkeys(order) if k in chosen)
    return rules.Configuration(ec["InstanceType"], env)


def measurement(step: dict[str, Any], stopping: dict[str, Any] | None) -> Measurement | None:
    """A benchmark step as the search sees it (None: the step failed, e.g. stopped early)."""
    if step["Status"] != Status.COMPLETED:
        return None
    bench = step["InferenceBenchmark"]
    p99 = bench["LatencyMs"].get("p99")
    return Measurement(
        float(bench["Metrics"].get("CostPerInference", float("inf"))),
        float(p99) if p99 is not None else float("inf"),
        rules.meets(bench, stopping),
    )


async def run(
    job: str,
    p: dict[str, Any],
    step: Callable[[int, rules.Configuration], Awaitable[dict[str, Any]]],
) -> None:
    """Drive the search with the runner's `step` (which measures a configuration, or
    returns the step of one measured before a restart). Seeded by the job's name, so a
    resumed job replays the same order."""
    stepper = Search(families(p), random.Random(job))
    index = 0
    while (point := stepper.next()) is not None:
        done = await step(index, configuration(p, point))
        stepper.record(point, measurement(done, p.get("StoppingConditions")))
        index += 1
