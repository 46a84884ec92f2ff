"""The one fleet owner, over an in-memory provider (no processes)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from modelhost.fleet.instance import Instance, LaunchSpec
from modelhost.fleet.launch import LaunchError
from modelhost.fleet.manager import FleetManager
from modelhost.fleet.multicontainer import GroupLaunchSpec
from modelhost.jobs.instances import JobFailed, start_fleet
from modelhost.jobs.pool import WarmFleet, WarmPool
from modelhost.resources.status import InstanceStatus
from modelhost.settings import Settings
from modelhost.testing.fleet import FakeClient, FakeProvider

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
MODEL = {"PrimaryContainer": {"Image": IMAGE}}
PIPELINE = {"Containers": [{"Image": IMAGE}, {"Image": IMAGE, "ContainerHostname": "two"}]}


def manager(tmp_path: Path) -> tuple[FleetManager, FakeProvider, FakeClient]:
    provider = FakeProvider()
    client = FakeClient(provider)
    settings = Settings(home=tmp_path, instance_startup_timeout_s=5.0)
    return FleetManager(settings, provider=provider, client=client), provider, client


def test_fleets_start_through_the_one_provider_and_stop_once_at_close(tmp_path: Path) -> None:
    fleets, provider, client = manager(tmp_path)

    async def body() -> None:
        a = await fleets.start_fleet("ep", "A", "m", MODEL, 2)
        b = await fleets.start_fleet("transform-job", "instances", "m", MODEL, 1)
        assert fleets.fleets == {a, b}
        assert len(provider.running) == 3 and len(a.serving()) == 2
        states = sorted(fleets.instances(), key=lambda s: s.instance_id)
        assert [(s.owner, s.variant_name, s.status) for s in states] == [
            ("ep", "A", InstanceStatus.IN_SERVICE),
            ("ep", "A", InstanceStatus.IN_SERVICE),
            ("transform-job", "instances", InstanceStatus.IN_SERVICE),
        ]
        await fleets.stop_fleet(a, drain_s=0)
        assert fleets.fleets == {b} and len(provider.running) == 1
        await fleets.close()
        await fleets.close()  # shutdown stops everything once
        assert provider.running == {} and fleets.fleets == frozenset()
        assert provider.killed_all == 1 and client.closed == 1

    asyncio.run(body())


def test_a_multi_container_model_gets_a_group_spec_unless_groups_are_off(tmp_path: Path) -> None:
    fleets, provider, _client = manager(tmp_path)

    async def body() -> None:
        spec = await fleets.launch_spec("ep", "A", "pipe", PIPELINE)
        assert isinstance(spec, GroupLaunchSpec) and spec.hostnames == ("container-1", "two")
        fleet = fleets.fleet(spec, 1)
        await fleet.start()
        assert len(provider.running) == 2  # one process per container, one instance
        assert len(fleet.serving()) == 1
        with pytest.raises(LaunchError, match="2 containers"):
            await fleets.launch_spec("job", "instances", "pipe", PIPELINE, groups=False)
        await fleets.close()
        assert provider.running == {}

    asyncio.run(body())


def test_an_unreadable_artifact_is_a_launch_error(tmp_path: Path) -> None:
    fleets, provider, _client = manager(tmp_path)
    missing = {"PrimaryContainer": {"Image": IMAGE, "ModelDataUrl": str(tmp_path / "nope.tgz")}}

    async def body() -> None:
        with pytest.raises(LaunchError):
            await fleets.start_fleet("ep", "A", "m", missing, 1)
        assert provider.started == [] and fleets.fleets == frozenset()

    asyncio.run(body())


def test_a_job_whose_instances_fail_leaves_no_fleet_behind(tmp_path: Path) -> None:
    fleets, provider, _client = manager(tmp_path)
    provider.failing.add("m")

    async def body() -> None:
        with pytest.raises(JobFailed, match="did not start"):
            await start_fleet(fleets, "transform-j", "m", MODEL, 2)
        assert fleets.fleets == frozenset() and provider.running == {}

    asyncio.run(body())


def test_warm_job_instances_are_kept_then_stopped_by_the_manager(tmp_path: Path) -> None:
    fleets, provider, _client = manager(tmp_path)

    async def body() -> None:
        pool = WarmPool(keep_alive_s=0.05)
        fleet = await start_fleet(fleets, "transform-j", "m", MODEL, 1)
        assert pool.give("key", WarmFleet(fleet, fleets))
        warm = pool.take("key")
        assert warm is not None and warm.fleet is fleet  # taken over at once
        assert pool.give("key", warm)
        while pool.take("other") is None and provider.running:
            await asyncio.sleep(0.01)  # until the keep-alive expires
        assert provider.running == {} and fleets.fleets == frozenset()
        await pool.close()

    asyncio.run(body())


def test_a_warm_fleet_with_a_dead_instance_is_not_reused(tmp_path: Path) -> None:
    fleets, provider, _client = manager(tmp_path)

    async def body() -> None:
        pool = WarmPool(keep_alive_s=60)
        fleet = await start_fleet(fleets, "transform-j", "m", MODEL, 2)
        assert pool.give("key", WarmFleet(fleet, fleets))
        provider.crash(fleet.instances[0])
        assert pool.take("key") is None
        await pool.close()
        assert provider.running == {} and fleets.fleets == frozenset()

    asyncio.run(body())


class LeftBehind(FakeProvider):
    """Instances whose gateway died but that outlive it (as Ray's detached actors do):
    `left` are adopted; released ones stay running."""

    outlives_gateway = True

    def __init__(self) -> None:
        super().__init__()
        self.left: list[Instance] = []
        self.released: list[Instance] = []

    async def adopt(self, spec: LaunchSpec, count: int) -> list[Instance]:
        found, self.left = self.left[:count], self.left[count:]
        for inst in found:
            inst.spec = spec
        return found

    async def release(self, instance: Instance, grace_s: float) -> None:
        self.released.append(instance)


def test_a_fleet_adopts_what_answers_and_starts_only_the_rest(tmp_path: Path) -> None:
    provider = LeftBehind()
    settings = Settings(home=tmp_path, instance_startup_timeout_s=5.0)
    fleets = FleetManager(settings, provider=provider, client=FakeClient(provider))

    async def body() -> None:
        spec = await fleets.launch_spec("ep", "A", "m", MODEL)
        old = [provider.start(spec) for _ in range(3)]
        provider.crash(old[2])  # left behind, but its process is gone: no /ping
        provider.left = list(old)
        fleet = fleets.fleet(spec, 4)
        await fleet.start()
        assert [i.instance_id for i in fleet.serving()[:2]] == [i.instance_id for i in old[:2]]
        assert len(fleet.serving()) == 4 and len(provider.started) == 3 + 2
        # This gateway stops leading: the instances are released, none stopped.
        await fleets.release_fleet(fleet, drain_s=0)
        assert len(provider.released) == 4 and fleets.fleets == frozenset()
        assert len(provider.running) == 4

    asyncio.run(body())
