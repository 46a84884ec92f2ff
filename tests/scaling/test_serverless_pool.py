"""The serverless pool over real fleets of in-memory instances (no processes)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from modelhost.control.deployment import Deployment, start_deployment
from modelhost.errors import ModelError, ThrottlingException
from modelhost.fleet.manager import FleetManager
from modelhost.resources.endpoints import ConfigSnapshot
from modelhost.scaling.serverless_pool import ServerlessPool
from modelhost.settings import Settings
from modelhost.testing.clock import FakeClock
from modelhost.testing.fleet import FakeClient, FakeProvider


def _snapshot(provisioned: int | None = None) -> ConfigSnapshot:
    config: dict[str, Any] = {"MemorySizeInMB": 1024, "MaxConcurrency": 2}
    if provisioned is not None:
        config["ProvisionedConcurrency"] = provisioned
    return ConfigSnapshot.from_spec(
        {
            "EndpointConfigName": "c",
            "Config": {
                "ProductionVariants": [
                    {"VariantName": "AllTraffic", "ModelName": "m", "ServerlessConfig": config}
                ]
            },
            "Models": {"m": {"PrimaryContainer": {}}},
        }
    )


async def _deploy(
    tmp_path: Path, provisioned: int | None = None
) -> tuple[FakeProvider, dict[str, Deployment], FleetManager]:
    provider = FakeProvider()
    manager = FleetManager(Settings(home=tmp_path), provider=provider, client=FakeClient(provider))
    dep = await start_deployment(manager, "e", _snapshot(provisioned), lambda: None)
    return provider, {"e": dep}, manager


def test_scales_from_zero_throttles_and_stops_idle(tmp_path: Path) -> None:
    asyncio.run(_test_scales_from_zero_throttles_and_stops_idle(tmp_path))


async def _test_scales_from_zero_throttles_and_stops_idle(tmp_path: Path) -> None:
    provider, deployments, manager = await _deploy(tmp_path)
    clock = FakeClock()
    seen: list[tuple[str, float]] = []
    pool = ServerlessPool(deployments, 10.0, lambda e, v, m, x: seen.append((m, x)), clock)
    fleet = deployments["e"].fleets["AllTraffic"]
    assert fleet.spec.memory_limit_bytes == 1024 * 1024 * 1024 and not provider.started

    first = await pool.acquire("e", "AllTraffic", 5.0)  # from zero: one instance starts
    second = await pool.acquire("e", "AllTraffic", 5.0)  # the first is busy: another
    assert first is not second and len(provider.running) == 2
    with pytest.raises(ThrottlingException, match="MaxConcurrency of 2"):
        await pool.acquire("e", "AllTraffic", 5.0)
    assert seen == [
        ("ServerlessConcurrentExecutionsUtilization", 0.5),
        ("ServerlessConcurrentExecutionsUtilization", 1.0),
    ]
    await pool.release("e", "AllTraffic", first)
    assert await pool.acquire("e", "AllTraffic", 5.0) is first  # reused, no third start
    assert len(provider.started) == 2
    await pool.release("e", "AllTraffic", first)
    await pool.release("e", "AllTraffic", second)

    clock.advance(9)
    await pool.reap_once()
    assert len(provider.running) == 2
    clock.advance(2)
    await pool.reap_once()
    assert not provider.running and not fleet.instances  # back to zero
    await manager.close()


def test_provisioned_concurrency_stays_warm(tmp_path: Path) -> None:
    asyncio.run(_test_provisioned_concurrency_stays_warm(tmp_path))


async def _test_provisioned_concurrency_stays_warm(tmp_path: Path) -> None:
    provider, deployments, manager = await _deploy(tmp_path, provisioned=1)
    assert len(provider.running) == 1  # started with the deployment
    clock = FakeClock()
    pool = ServerlessPool(deployments, 1.0, clock=clock)
    warm = next(iter(provider.running.values()))
    got = await pool.acquire("e", "AllTraffic", 5.0)
    assert got is warm and len(provider.started) == 1  # no cold start
    await pool.release("e", "AllTraffic", got)
    clock.advance(100)
    await pool.reap_once()
    assert list(provider.running.values()) == [warm]
    await manager.close()


def test_a_start_that_fails_is_a_model_error_and_the_next_request_retries(
    tmp_path: Path,
) -> None:
    asyncio.run(_test_a_start_that_fails_is_a_model_error_and_the_next_request_retries(tmp_path))


async def _test_a_start_that_fails_is_a_model_error_and_the_next_request_retries(
    tmp_path: Path,
) -> None:
    provider, deployments, manager = await _deploy(tmp_path)
    pool = ServerlessPool(deployments, 10.0, clock=FakeClock())
    provider.failing.add("m")
    with pytest.raises(ModelError, match="could not start"):
        await pool.acquire("e", "AllTraffic", 5.0)
    provider.failing.clear()
    got = await asyncio.wait_for(pool.acquire("e", "AllTraffic", 5.0), 5.0)
    assert got.instance_id in provider.running
    await pool.release("e", "AllTraffic", got)
    await manager.close()
