"""Fixtures of the fleet tests: a local 3-node Ray cluster for each Ray test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modelhost.testing.ray import RayCluster, local_ray_cluster


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[RayCluster]:
    """Three raylets on this machine (1 CPU each) for one module: Ray's own processes take
    ~1.2 GiB and ~10 s to start. A module of its own per cluster, so instance actors that
    outlive a module's gateway never reach another module's counts (xdist may also split
    a module over both workers: each then has its own cluster)."""
    pytest.importorskip("ray")
    with local_ray_cluster(nodes=3, cpus_per_node=1) as cluster:
        yield cluster
