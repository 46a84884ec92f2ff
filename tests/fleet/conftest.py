"""Fixtures of the fleet tests: one local 3-node Ray cluster for the Ray test modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modelhost.testing.ray import RayCluster, local_ray_cluster


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every Ray test runs on one xdist worker (pyproject's `--dist loadgroup`), so one
    cluster serves them all instead of one per worker."""
    for item in items:
        if item.get_closest_marker("ray"):
            item.add_marker(pytest.mark.xdist_group("ray"))


@pytest.fixture(scope="session")
def ray_session_cluster() -> Iterator[RayCluster]:
    """Three raylets on this machine (1 CPU each), shared by the Ray test modules: Ray's
    own processes take ~1.2 GiB and ~10 s to start."""
    pytest.importorskip("ray")
    with local_ray_cluster(nodes=3, cpus_per_node=1) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def ray_cluster(ray_session_cluster: RayCluster) -> RayCluster:
    """The shared cluster with all its nodes up: a module that kills a node leaves it
    dead, and the next module gets it back here (`start` only starts missing nodes)."""
    ray_session_cluster.start()
    return ray_session_cluster
