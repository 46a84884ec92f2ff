"""Instances forked from a warm zygote: real processes on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from modelhost.container.process import process_alive
from modelhost.fleet.manager import FleetManager
from modelhost.fleet.zygote import ZygoteProvider
from modelhost.settings import Settings
from tests.support import XGBOOST_IMAGE, ChurnModel

pytestmark = pytest.mark.integration

GIB = 1024 * 1024 * 1024


def _ppid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rfind(")") + 2 :].split()[1])


def _data_limit(pid: int) -> str:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max data size"):
            return line.split()[3]
    raise AssertionError("no data limit line")


async def _forks_an_instance_that_serves(tmp_path: Path, churn_model: ChurnModel) -> None:
    manager = FleetManager(Settings(home=tmp_path, instance_startup_timeout_s=60))
    provider = manager.provider
    assert isinstance(provider, ZygoteProvider)
    container = {"Image": XGBOOST_IMAGE, "ModelDataUrl": str(churn_model.artifact)}
    model = {"PrimaryContainer": container}
    try:
        spawned = await manager.launch_spec("e", "v", "m", model)
        fast = await manager.launch_spec("e", "v", "m", model)
        fast.fast_start, fast.memory_limit_bytes = True, GIB
        manager.prewarm(fast)
        deadline = time.monotonic() + 120
        while not provider.ready(fast):
            assert time.monotonic() < deadline, "the zygote did not warm up"
            await asyncio.sleep(0.05)

        fleet = manager.fleet(fast, 0)
        inst = await fleet.add_one()
        assert _ppid(inst.pid) == provider.zygote_pid(fast)  # forked, not spawned
        assert _data_limit(inst.pid) == str(GIB)  # MemorySizeInMB as RLIMIT_DATA
        row = ",".join(repr(float(v)) for v in churn_model.data.X[0]).encode()
        status, _headers, body = await manager.client.http.request(
            inst.address, b"POST", b"/invocations", [(b"content-type", b"text/csv")], row, 30
        )
        assert status == 200
        assert float(body) == pytest.approx(float(churn_model.expected(churn_model.data.X[:1])[0]))
        assert provider.exit_code(inst) is None
        await manager.stop_fleet(fleet, 0)
        assert not process_alive(inst.pid)

        # Not marked fast_start (a real-time variant): a fresh interpreter, as before.
        other = manager.fleet(spawned, 0)
        plain = await other.add_one()
        assert _ppid(plain.pid) != provider.zygote_pid(fast)
        await manager.stop_fleet(other, 0)
    finally:
        zygote = provider.zygote_pid(fast)
        await manager.close()
    assert zygote is not None and not process_alive(zygote)


def test_forks_an_instance_that_serves_and_stops(tmp_path: Path, churn_model: ChurnModel) -> None:
    asyncio.run(_forks_an_instance_that_serves(tmp_path, churn_model))
