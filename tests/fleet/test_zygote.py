"""Instances forked from a warm zygote: real processes on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from modelhost.container.process import process_alive
from modelhost.fleet.instance import Instance
from modelhost.fleet.manager import FleetManager
from modelhost.fleet.variant import VariantFleet
from modelhost.fleet.zygote import ZygoteProvider
from modelhost.settings import Settings
from tests.support import XGBOOST_IMAGE, ChurnModel, parent_pid

pytestmark = pytest.mark.integration

GIB = 1024 * 1024 * 1024


def _data_limit(pid: int) -> str:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max data size"):
            return line.split()[3]
    raise AssertionError("no data limit line")


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


async def _predict(manager: FleetManager, inst: Instance, churn_model: ChurnModel) -> None:
    row = ",".join(repr(float(v)) for v in churn_model.data.X[0]).encode()
    status, _headers, body = await manager.client.http.request(
        inst.address, b"POST", b"/invocations", [(b"content-type", b"text/csv")], row, 30
    )
    assert status == 200, body
    assert float(body) == pytest.approx(float(churn_model.expected(churn_model.data.X[:1])[0]))


async def _replaced(fleet: VariantFleet, victim: Instance) -> Instance:
    """Wait (no health check is run: the exit alone must start the replacement) for
    another instance to serve in `victim`'s place."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while True:
        others = [i for i in fleet.serving() if i is not victim]
        if others and victim not in fleet.instances:
            return others[0]
        assert loop.time() < deadline, "the killed instance was not replaced"
        await asyncio.sleep(0.05)


def _model(churn_model: ChurnModel, **env: str) -> dict[str, Any]:
    container = {"Image": XGBOOST_IMAGE, "ModelDataUrl": str(churn_model.artifact)}
    return {"PrimaryContainer": {**container, "Environment": env}}


async def _real_time_instances_fork(tmp_path: Path, churn_model: ChurnModel) -> None:
    manager = FleetManager(Settings(home=tmp_path, instance_startup_timeout_s=60))
    provider = manager.provider
    assert isinstance(provider, ZygoteProvider)
    try:
        # Two workers per instance, as a transform job asks for: the fork forks them.
        spec = await manager.launch_spec(
            "e", "v", "m", _model(churn_model, SAGEMAKER_MODEL_SERVER_WORKERS="2"), "ml.m5.large"
        )
        await manager.warm(spec)
        assert provider.ready(spec)
        zygote = provider.zygote_pid(spec)
        fleet = manager.fleet(spec, 1)
        await fleet.start()
        (inst,) = fleet.serving()
        assert parent_pid(inst.pid) == zygote  # forked, not spawned
        # Its own log as stdout/stderr, its own port (from its environment), two workers.
        assert Path(os.readlink(f"/proc/{inst.pid}/fd/1")) == inst.log_path
        assert Path(os.readlink(f"/proc/{inst.pid}/fd/2")) == inst.log_path
        assert len(_children(inst.pid)) == 2
        await _predict(manager, inst, churn_model)

        # kill -9: replaced at once by another forked instance.
        os.kill(inst.pid, signal.SIGKILL)
        new = await _replaced(fleet, inst)
        assert parent_pid(new.pid) == zygote
        await _predict(manager, new, churn_model)

        # A memory limit (a serverless variant's MemorySizeInMB) holds in a forked child.
        limited = await manager.launch_spec("e", "s", "m", _model(churn_model))
        limited.memory_limit_bytes = GIB
        small = manager.fleet(limited, 0)
        one = await small.add_one()
        assert parent_pid(one.pid) == zygote
        assert _data_limit(one.pid) == str(GIB)
        await manager.stop_fleet(small, 0)
        assert not process_alive(one.pid)
        await manager.stop_fleet(fleet, 0)
        assert not process_alive(new.pid)
    finally:
        await manager.close()
    assert zygote is not None and not process_alive(zygote)


def test_real_time_instances_fork_and_a_killed_one_is_replaced_at_once(
    tmp_path: Path, churn_model: ChurnModel
) -> None:
    asyncio.run(_real_time_instances_fork(tmp_path, churn_model))


async def _multi_model_instances_fork(tmp_path: Path, churn_model: ChurnModel) -> None:
    manager = FleetManager(Settings(home=tmp_path, instance_startup_timeout_s=60))
    provider = manager.provider
    assert isinstance(provider, ZygoteProvider)
    prefix = churn_model.artifact.parent
    container = {"Image": XGBOOST_IMAGE, "Mode": "MultiModel", "ModelDataUrl": str(prefix)}
    model = {"PrimaryContainer": container}
    try:
        spec = await manager.launch_spec("mme", "v", "m", model)
        assert spec.model_data_prefix is not None
        await manager.warm(spec)
        fleet = manager.fleet(spec, 1)
        await fleet.start()
        (inst,) = fleet.serving()
        assert parent_pid(inst.pid) == provider.zygote_pid(spec)
        load = f'{{"model_name": "churn", "url": "{churn_model.artifact}"}}'.encode()
        status, _, body = await manager.client.http.request(
            inst.address, b"POST", b"/models", [(b"content-type", b"application/json")], load, 30
        )
        assert status == 200, body
        row = ",".join(repr(float(v)) for v in churn_model.data.X[0]).encode()
        csv = [(b"content-type", b"text/csv")]
        status, _, body = await manager.client.http.request(
            inst.address, b"POST", b"/models/churn/invoke", csv, row, 30
        )
        assert status == 200, body
        assert float(body) == pytest.approx(float(churn_model.expected(churn_model.data.X[:1])[0]))
    finally:
        await manager.close()


def test_multi_model_instances_fork(tmp_path: Path, churn_model: ChurnModel) -> None:
    asyncio.run(_multi_model_instances_fork(tmp_path, churn_model))


async def _without_the_zygote(tmp_path: Path, churn_model: ChurnModel) -> None:
    manager = FleetManager(Settings(home=tmp_path, instance_startup_timeout_s=60, zygote=False))
    assert not isinstance(manager.provider, ZygoteProvider)
    try:
        spec = await manager.launch_spec("e", "v", "m", _model(churn_model))
        await manager.warm(spec)  # nothing to warm
        fleet = manager.fleet(spec, 1)
        await fleet.start()
        (inst,) = fleet.serving()
        assert parent_pid(inst.pid) == os.getpid()  # a fresh interpreter, our child
        await _predict(manager, inst, churn_model)
        # A spawned instance's exit is seen at once too.
        os.kill(inst.pid, signal.SIGKILL)
        new = await _replaced(fleet, inst)
        assert parent_pid(new.pid) == os.getpid()
        await _predict(manager, new, churn_model)
    finally:
        await manager.close()
    assert not list((tmp_path / "logs").glob("zygote-*.log"))


def test_with_the_zygote_off_instances_are_spawned(tmp_path: Path, churn_model: ChurnModel) -> None:
    asyncio.run(_without_the_zygote(tmp_path, churn_model))


def test_a_stopped_instance_is_not_replaced(tmp_path: Path, churn_model: ChurnModel) -> None:
    async def body() -> None:
        manager = FleetManager(Settings(home=tmp_path, instance_startup_timeout_s=60))
        try:
            spec = await manager.launch_spec("e", "v", "m", _model(churn_model))
            await manager.warm(spec)
            fleet = manager.fleet(spec, 2)
            await fleet.start()
            await fleet.scale_to(1, drain_s=5)  # a stop on purpose, not an exit
            await asyncio.sleep(0.2)
            assert len(fleet.instances) == 1 and len(fleet.serving()) == 1
        finally:
            await manager.close()

    asyncio.run(body())
