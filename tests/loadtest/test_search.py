"""The recommender's search, pure: on synthetic landscapes it finds the exhaustive search's
optimum while measuring fewer points, respects the thresholds, and drives an Advanced job's
configurations (recommendation_search.py) with a fake step."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from modelhost.loadtest import recommendation as rules
from modelhost.loadtest import recommendation_search as searched
from modelhost.loadtest.search import (
    Axis,
    Family,
    Measurement,
    Point,
    Search,
    exhaustive,
    pareto,
    search,
)
from modelhost.testing.landscape import InstanceModel, Landscape, standard_types

LANDSCAPES = [
    # (offered load req/s, p99 threshold ms)
    (400.0, 60.0),
    (100.0, 30.0),
    (800.0, 80.0),
    (1500.0, 100.0),
    (3000.0, 200.0),
]


def optimum(result: Any) -> float | None:
    return result.measured[result.best].cost if result.best is not None else None


@pytest.mark.parametrize(("load_rps", "threshold_ms"), LANDSCAPES)
def test_finds_the_exhaustive_optimum_with_fewer_measurements(
    load_rps: float, threshold_ms: float
) -> None:
    grid = Landscape(standard_types(), load_rps=load_rps, threshold_ms=threshold_ms)
    full = exhaustive(grid.families(), grid.measure)
    smart = Landscape(standard_types(), load_rps=load_rps, threshold_ms=threshold_ms)
    found = search(smart.families(), smart.measure, random.Random(1))
    best, full_best = optimum(found), optimum(full)
    assert best is not None and full_best is not None
    assert best <= full_best * 1.10
    assert smart.count < grid.count
    assert smart.elapsed_s <= grid.elapsed_s / 3


def test_other_instance_types_and_a_seeded_rng_are_reproducible() -> None:
    types = (
        InstanceModel("ml.m5.large", 2, 0.115, 12.0),
        InstanceModel("ml.m5.4xlarge", 16, 0.922, 10.0),
    )
    runs = []
    for _ in range(2):
        land = Landscape(types, load_rps=600.0, threshold_ms=70.0, workers=(1, 2, 4, 8, 16))
        runs.append(search(land.families(), land.measure, random.Random(7)))
    assert list(runs[0].measured) == list(runs[1].measured)
    full = Landscape(types, load_rps=600.0, threshold_ms=70.0, workers=(1, 2, 4, 8, 16))
    assert optimum(runs[0]) == optimum(exhaustive(full.families(), full.measure))


def test_respects_the_thresholds_and_reports_none_when_nothing_meets_them() -> None:
    land = Landscape(standard_types(), load_rps=200.0, threshold_ms=20.0)
    found = search(land.families(), land.measure, random.Random(1))
    assert found.best is None and found.front == []
    assert land.count < land.families()[0].size() * len(land.families())
    ok = Landscape(standard_types(), load_rps=400.0, threshold_ms=60.0)
    result = search(ok.families(), ok.measure, random.Random(1))
    for p in result.front:
        m = result.measured[p]
        assert m is not None and m.meets and m.p99_ms <= 60.0
    assert result.best in result.front


def test_extremes_first_then_bisection_toward_the_threshold() -> None:
    # One axis, latency falls as it rises; the threshold lies between levels 5 and 6.
    family = Family("ml.c5.large", (Axis("INSTANCE_COUNT", tuple(map(str, range(1, 17))), 1),))

    def measure(p: Point) -> Measurement:
        (n,) = p.levels
        p99 = 200.0 / (n + 1)
        return Measurement(cost=float(n + 1), p99_ms=p99, meets=p99 <= 30.0)

    stepper = Search([family], random.Random(0))
    order = []
    while (p := stepper.next()) is not None:
        order.append(p.levels[0])
        stepper.record(p, measure(p))
    assert order[:2] == [0, 15]
    assert order[2] in (7, 8)  # the midpoint
    result = stepper.result()
    assert result.best == Point(0, (6,))
    assert len(order) <= 8  # a bisection and its neighbours, not 16 measurements


def test_pareto_front_keeps_only_undominated_points_cheapest_first() -> None:
    measured: dict[Point, Measurement | None] = {
        Point(0, (0,)): Measurement(1.0, 50.0, True),
        Point(0, (1,)): Measurement(2.0, 20.0, True),
        Point(0, (2,)): Measurement(3.0, 30.0, True),  # dominated by (1,)
        Point(0, (3,)): Measurement(0.5, 90.0, False),  # over the threshold
        Point(0, (4,)): None,
    }
    assert pareto(measured) == [Point(0, (0,)), Point(0, (1,))]


def test_max_measurements_bounds_the_search() -> None:
    land = Landscape(standard_types())
    found = search(land.families(), land.measure, random.Random(1), max_measurements=5)
    assert len(found.measured) == 5


def advanced(ranges: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "JobType": "Advanced",
        "InputConfig": {
            "EndpointConfigurations": [
                {
                    "InstanceType": "ml.c5.large",
                    "EnvironmentParameterRanges": {"CategoricalParameterRanges": ranges},
                }
            ]
        },
        "StoppingConditions": {
            "ModelLatencyThresholds": [{"Percentile": "P99", "ValueInMilliseconds": 50}]
        },
    }


def test_an_advanced_job_with_ranges_is_searched_in_natural_order() -> None:
    p = advanced(
        [
            {"Name": "SAGEMAKER_MODEL_SERVER_WORKERS", "Value": ["8", "1", "2", "4"]},
            {"Name": "MODE", "Value": ["x"]},
        ]
    )
    assert rules.searched(p)
    assert not rules.searched({**p, "JobType": "Default"})
    assert not rules.searched(advanced([{"Name": "MODE", "Value": ["x"]}]))
    (family,) = searched.families(p)
    assert family.axes[0].values == ("1", "2", "4", "8")
    config = searched.configuration(p, Point(0, (3,)))
    assert config.key() == "ml.c5.large SAGEMAKER_MODEL_SERVER_WORKERS=8 MODE=x"


def step_of(workers: int, *, completed: bool = True) -> dict[str, Any]:
    p99 = 120.0 / workers
    bench = {
        "Metrics": {"MaxInvocations": 600, "CostPerInference": 1e-6 * workers},
        "LatencyMs": {"p50": p99 / 2, "p99": p99},
    }
    status = "COMPLETED" if completed else "FAILED"
    return {"Status": status, "InferenceBenchmark": bench, "Key": str(workers)}


def test_the_runner_drives_the_search_through_its_step() -> None:
    values = [str(w) for w in range(1, 13)]
    p = advanced([{"Name": "SAGEMAKER_MODEL_SERVER_WORKERS", "Value": values}])
    seen: list[str] = []

    async def step(_index: int, config: rules.Configuration) -> dict[str, Any]:
        workers = int(dict(config.environment)["SAGEMAKER_MODEL_SERVER_WORKERS"])
        seen.append(config.key())
        return step_of(workers)

    asyncio.run(searched.run("job-a", p, step))
    assert len(seen) == len(set(seen)) < len(values)
    # p99 = 120/w meets 50 ms from 3 workers, the cheapest configuration meeting it.
    assert "ml.c5.large SAGEMAKER_MODEL_SERVER_WORKERS=3" in seen
    stopping = p["StoppingConditions"]
    assert searched.measurement(step_of(2, completed=False), stopping) is None
    m = searched.measurement(step_of(3), stopping)
    assert m == Measurement(3e-6, 40.0, True)


def test_a_searched_job_may_list_more_configurations() -> None:
    many = [str(w) for w in range(1, 41)]
    p = advanced([{"Name": "SAGEMAKER_MODEL_SERVER_WORKERS", "Value": many}])
    assert len(rules.configurations(p)) == 40 > rules.MAX_CONFIGURATIONS
    assert len(rules.configurations(p)) <= rules.MAX_SEARCHED_CONFIGURATIONS


def test_a_job_mixing_types_with_and_without_ranges_measures_each_type() -> None:
    p = advanced([{"Name": "SAGEMAKER_MODEL_SERVER_WORKERS", "Value": ["1", "2", "3", "4"]}])
    p["InputConfig"]["EndpointConfigurations"].append({"InstanceType": "ml.m5.large"})
    seen: list[str] = []

    async def step(_index: int, config: rules.Configuration) -> dict[str, Any]:
        seen.append(config.key())
        workers = int(dict(config.environment).get("SAGEMAKER_MODEL_SERVER_WORKERS", "1"))
        return step_of(workers)

    asyncio.run(searched.run("job-b", p, step))
    assert "ml.m5.large" in seen
    assert seen[:2] == ["ml.c5.large SAGEMAKER_MODEL_SERVER_WORKERS=1", "ml.m5.large"]
    assert len(seen) == len(set(seen))
