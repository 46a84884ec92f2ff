"""A synthetic cost/latency landscape for the recommender's search (tests and bench/).

Each instance type serves a fixed offered load (`load_rps`) with `workers` model-server
workers (effective up to its vCPUs; more workers than vCPUs contend), `batch` requests
per batch and `instances` instances. Capacity grows with effective workers, instances and
batching; p99 latency is a batch's service time stretched by queueing (1 / (1 - load /
capacity)) and by contention, so it grows with load and shrinks with workers and instances.
A configuration whose utilisation reaches 1 cannot keep up and breaks every threshold.
Cost per inference is the hourly price times instances over the served requests per hour.
Each measurement takes `setup_s` plus `test_s`, or less when its threshold breaks early.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from modelhost.loadtest.search import Axis, Family, Measurement, Point


@dataclass(frozen=True)
class InstanceModel:
    """One instance type of the landscape."""

    instance_type: str
    vcpus: int
    price_per_hour: float
    service_ms: float  # one request on one worker of this type


@dataclass
class Landscape:
    """The simulated measurement function and its clock (`elapsed_s`)."""

    types: tuple[InstanceModel, ...]
    workers: tuple[int, ...] = (1, 2, 4, 8)
    batches: tuple[int, ...] = (1, 2, 4, 8, 16)
    instances: tuple[int, ...] = (1, 2, 3, 4)
    load_rps: float = 400.0
    threshold_ms: float = 60.0
    batch_overhead: float = 0.35  # a batch of b takes service * (1 + overhead * (b - 1))
    noise: float = 0.0  # relative noise of each measurement
    seed: int = 0  # of the noise: one point measures the same in every search of a seed
    setup_s: float = 20.0
    test_s: float = 60.0
    elapsed_s: float = 0.0
    count: int = 0

    def families(self) -> list[Family]:
        axes = (
            Axis("SAGEMAKER_MODEL_SERVER_WORKERS", tuple(map(str, self.workers)), 0),
            Axis("MAX_BATCH_SIZE", tuple(map(str, self.batches)), 0),
            Axis("INSTANCE_COUNT", tuple(map(str, self.instances)), 1, cost_rises=True),
        )
        return [Family(t.instance_type, axes) for t in self.types]

    def figures(self, point: Point) -> tuple[float, float, float]:
        """(cost per inference, p99 ms, utilisation) of a point, without noise."""
        t = self.types[point.family]
        w, b, n = (
            self.workers[point.levels[0]],
            self.batches[point.levels[1]],
            self.instances[point.levels[2]],
        )
        contention = max(1.0, w / t.vcpus)
        batch_ms = t.service_ms * (1 + self.batch_overhead * (b - 1)) * contention
        capacity_rps = min(w, t.vcpus) * n * b * 1000.0 / batch_ms
        rho = self.load_rps / capacity_rps
        served = min(self.load_rps, capacity_rps)
        cost = t.price_per_hour * n / (served * 3600.0)
        # Waiting for a batch to fill adds about b / load of a second.
        fill_ms = (b - 1) * 1000.0 / self.load_rps
        p99 = float("inf") if rho >= 1 else 3.0 * batch_ms / (1 - rho) + fill_ms
        return cost, p99, rho

    def measure(self, point: Point) -> Measurement:
        self.count += 1
        cost, p99, _rho = self.figures(point)
        if self.noise and p99 != float("inf"):
            rng = random.Random(f"{self.seed} {point.family} {point.levels}")
            p99 *= 1 + rng.uniform(-self.noise, self.noise)
            cost *= 1 + rng.uniform(-self.noise, self.noise)
        meets = p99 <= self.threshold_ms
        # A broken threshold stops the test early (two progress intervals of a few seconds).
        self.elapsed_s += self.setup_s + (self.test_s if meets else min(self.test_s, 10.0))
        return Measurement(cost, p99, meets)


def standard_types() -> tuple[InstanceModel, ...]:
    """Three instance types priced like ml.c5.large/xlarge/2xlarge (us-east-1)."""
    return (
        InstanceModel("ml.c5.large", 2, 0.119, 9.0),
        InstanceModel("ml.c5.xlarge", 4, 0.238, 8.0),
        InstanceModel("ml.c5.2xlarge", 8, 0.476, 8.0),
    )
