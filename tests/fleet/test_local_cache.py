"""The gateway's bounded artifact cache as the fleets use it (an in-memory provider, real
files): a fleet's artifact stays leased while the fleet lives, its stop frees it for the
periodic pass; and the Ray nodes' periodic pass, without Ray."""

from __future__ import annotations

import asyncio
import io
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from modelhost.fleet.launch import LaunchError, node_store_config
from modelhost.fleet.manager import FleetManager
from modelhost.fleet.multimodel import artifact_store_env
from modelhost.fleet.ray.artifacts import (
    bound_node,
    bound_node_caches,
    node_cache_dir,
    node_local_dir,
)
from modelhost.settings import Settings
from modelhost.store.artifacts import ArtifactStore
from modelhost.store.cache_bound import lease, scan
from modelhost.testing.fleet import FakeClient, FakeProvider
from tests.tier_support import compiled_entry

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
MODEL_BYTES = 20_000


def _archive(path: Path) -> str:
    data = os.urandom(MODEL_BYTES)  # its digest, the cache key, differs per model
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("xgboost-model")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return str(path)


def _model(url: str) -> dict[str, Any]:
    return {"PrimaryContainer": {"Image": IMAGE, "ModelDataUrl": url}}


def _manager(tmp_path: Path, budget_bytes: int) -> tuple[FleetManager, Path]:
    settings = Settings(home=tmp_path / "home", artifact_cache_bytes=budget_bytes)
    provider = FakeProvider()
    manager = FleetManager(settings, provider=provider, client=FakeClient(provider))
    return manager, settings.artifact_cache_dir


def _in_use(cache: Path) -> set[str]:
    return {e.key for e in scan(cache) if e.in_use}


def test_a_fleets_artifact_is_leased_until_the_fleet_stops(tmp_path: Path) -> None:
    fleets, cache = _manager(tmp_path, budget_bytes=1)
    first = _archive(tmp_path / "a" / "model.tar.gz")
    second = _archive(tmp_path / "b" / "model.tar.gz")

    async def body() -> None:
        a = await fleets.start_fleet("ep-a", "AllTraffic", "a", _model(first), 1)
        b = await fleets.start_fleet("transform-b", "instances", "b", _model(second), 1)
        dir_a, dir_b = a.spec.model_dir, b.spec.model_dir
        assert _in_use(cache) == {dir_a.name, dir_b.name}
        # Over its budget of 1 byte, yet both are in use: the pass leaves them.
        assert fleets.bound_caches() == []
        assert dir_a.is_dir() and dir_b.is_dir()
        await fleets.stop_fleet(a, drain_s=0)
        assert _in_use(cache) == {dir_b.name}
        fleets.bound_caches()
        assert not dir_a.exists() and dir_b.is_dir()
        await fleets.close()
        fleets.bound_caches()
        assert scan(cache) == []

    asyncio.run(body())


def test_a_spec_that_fails_to_build_releases_what_it_leased(tmp_path: Path) -> None:
    fleets, cache = _manager(tmp_path, budget_bytes=1)
    url = _archive(tmp_path / "a" / "model.tar.gz")
    # Two containers, the second one's artifact missing: the first one's lease must go.
    spec = {
        "Containers": [
            {"Image": IMAGE, "ModelDataUrl": url},
            {"Image": IMAGE, "ModelDataUrl": str(tmp_path / "missing.tar.gz")},
        ]
    }

    async def body() -> None:
        with pytest.raises(LaunchError):
            await fleets.launch_spec("ep", "AllTraffic", "m", spec)

    asyncio.run(body())
    assert [e.in_use for e in scan(cache)] == [False]


def test_a_directory_used_in_place_is_never_leased_nor_evicted(tmp_path: Path) -> None:
    fleets, _ = _manager(tmp_path, budget_bytes=1)
    folder = tmp_path / "unpacked"
    folder.mkdir()
    (folder / "xgboost-model").write_bytes(b"x" * 100)

    async def body() -> None:
        fleet = await fleets.start_fleet("ep", "AllTraffic", "m", _model(str(folder)), 1)
        assert fleet.spec.model_dir == folder and fleet.spec.leases[0].lease is None
        await fleets.close()

    asyncio.run(body())
    fleets.bound_caches()
    assert (folder / "xgboost-model").is_file()


def test_the_pass_bounds_the_compiled_tiers_cache_too(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", compiled_cache_bytes=1)
    provider = FakeProvider()
    fleets = FleetManager(settings, provider=provider, client=FakeClient(provider))
    compiled = settings.home / "compiled"
    idle = compiled_entry(compiled, "idle", 100)
    failed = compiled_entry(compiled, "failed", 10, failed=True)
    used = compiled_entry(compiled, "used", 100)
    held = lease(compiled, used)  # an instance predicting with it
    assert held is not None
    fleets.bound_caches()
    assert not idle.exists() and not failed.exists() and used.is_dir()
    held.close()
    fleets.bound_caches()
    assert not used.exists()


def test_multi_model_instances_get_the_caches_budget(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, artifact_cache_bytes=777)
    env = artifact_store_env(settings)
    assert env["MH_INSTANCE_ARTIFACT_CACHE_BYTES"] == "777"
    assert env["MH_INSTANCE_ARTIFACT_CACHE_DIR"] == str(tmp_path / "artifacts")


# --- the Ray nodes' pass, without Ray ------------------------------------------------------


def _node_settings(tmp_path: Path) -> Settings:
    nodes = str(tmp_path / "nodes")
    return Settings(home=tmp_path / "gateway", ray_node_cache_dir=nodes, ray_node_cache_bytes=1)


def test_a_nodes_pass_evicts_its_idle_entries(tmp_path: Path) -> None:
    store = node_store_config(_node_settings(tmp_path))
    assert bound_node(store, "10.0.0.9") == ""  # no cache on that node yet: nothing made
    assert not node_cache_dir(store, "10.0.0.9").exists()
    cache = node_cache_dir(store, "10.0.0.1")
    entry = ArtifactStore.from_values(cache).fetch(_archive(tmp_path / "m.tar.gz"))
    line = bound_node(store, "10.0.0.1")
    assert "evicted 1 entries" in line and not entry.exists()


class _FakeRay:
    """`ray.nodes`/`remote`/`wait`/`get` enough for `bound_node_caches`: a task pinned to a
    node runs there at once (its strategy names the node)."""

    def __init__(self, store: dict[str, Any], fail: str | None = None) -> None:
        self.rows = [
            {"NodeID": "n1", "NodeManagerAddress": "10.0.0.1", "Alive": True},
            {"NodeID": "n2", "NodeManagerAddress": "10.0.0.2", "Alive": True},
            {"NodeID": "n3", "NodeManagerAddress": "10.0.0.3", "Alive": False},
        ]
        self.pinned: list[str] = []
        self.fail = fail

    def nodes(self) -> list[dict[str, Any]]:
        return self.rows

    def remote(self, _fn: Any) -> Any:
        fake = self

        class Task:
            def options(self, **options: Any) -> Any:
                assert options["num_cpus"] == 0
                node = options["scheduling_strategy"]
                fake.pinned.append(node)
                address = next(r["NodeManagerAddress"] for r in fake.rows if r["NodeID"] == node)

                class Call:
                    def remote(self, store: dict[str, Any]) -> Any:
                        if node == fake.fail:
                            return RuntimeError("node died")
                        return bound_node(store, address)

                return Call()

        return Task()

    def wait(self, refs: list[Any], num_returns: int, timeout: float) -> tuple[list[Any], list]:
        return refs, []

    def get(self, ref: Any) -> Any:
        if isinstance(ref, Exception):
            raise ref
        return ref


def test_the_ray_pass_runs_one_pinned_task_per_live_node(tmp_path: Path) -> None:
    store = node_store_config(_node_settings(tmp_path))
    entries = [
        ArtifactStore.from_values(node_cache_dir(store, node)).fetch(
            _archive(tmp_path / node / "m.tar.gz")
        )
        for node in ("10.0.0.1", "10.0.0.2")
    ]
    ray = _FakeRay(store, fail="n2")
    lines = bound_node_caches(ray, store, pin=lambda node_id: node_id)
    assert ray.pinned == ["n1", "n2"]  # the dead node is skipped
    assert not entries[0].exists() and entries[1].is_dir()
    assert len(lines) == 2 and "evicted 1 entries" in lines[0] and "node died" in lines[1]


def test_a_nodes_pass_bounds_its_compiled_forms_and_packages(tmp_path: Path) -> None:
    settings = _node_settings(tmp_path)
    settings.compiled_cache_bytes = 1
    settings.packages_cache_bytes = 1
    store = node_store_config(settings)
    compiled = node_local_dir(settings.ray_node_cache_dir, "10.0.0.1", "compiled")
    packages = node_local_dir(settings.ray_node_cache_dir, "10.0.0.1", "packages")
    idle = compiled_entry(compiled, "idle", 100)
    used = compiled_entry(compiled, "used", 100)
    install = compiled_entry(packages, "install", 100)  # the same layout
    held = lease(compiled, used)
    assert held is not None
    lines = bound_node(store, "10.0.0.1").splitlines()
    assert len(lines) == 2 and all("evicted 1 entries" in line for line in lines)
    assert not idle.exists() and used.is_dir() and not install.exists()
    held.close()
