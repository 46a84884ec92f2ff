"""Instance types mean CPU locally: the type table, the rotating CPU share, the pinning."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest

from modelhost.container.config import InstanceConfig, default_workers
from modelhost.fleet.cpu_share import ENV, CpuShares, cpu_share
from modelhost.fleet.instance import LaunchSpec
from modelhost.fleet.local import LocalProcessProvider
from modelhost.resources.gpus import INSTANCE_TYPE_ENV
from modelhost.resources.instance_types import (
    GIB,
    instance_memory_bytes,
    instance_type,
    instance_vcpus,
    table,
)


def test_the_table_gives_vcpus_memory_gpus_and_accelerator() -> None:
    c5 = instance_type("ml.c5.xlarge")
    assert c5 is not None and (c5.vcpus, c5.memory_bytes, c5.gpus) == (4, 8 * GIB, 0)
    g5 = instance_type("ML.G5.12XLARGE")
    assert g5 is not None and (g5.vcpus, g5.gpus, g5.accelerator) == (48, 4, "nvidia-a10g")
    assert all(t.vcpus >= 1 and t.memory_bytes > 0 for t in table().values())


def test_types_outside_the_table_follow_the_naming_rule() -> None:
    assert "ml.m5.8xlarge" not in table()
    assert instance_memory_bytes("ml.m5.8xlarge") == 128 * GIB
    assert instance_vcpus("ml.m5.8xlarge") == 32
    assert instance_vcpus("ml.unknown") is None and instance_memory_bytes(None) is None


def test_shares_rotate_over_the_machine_and_are_capped_by_its_cores() -> None:
    machine = [0, 1, 2, 3]
    assert [cpu_share(1, machine, i) for i in range(5)] == [[0], [1], [2], [3], [0]]
    assert [cpu_share(2, machine, i) for i in range(3)] == [[0, 1], [2, 3], [0, 1]]
    assert cpu_share(3, machine, 1) == [0, 1, 3]  # starts at 3, wraps around
    assert cpu_share(96, machine, 7) == machine
    assert cpu_share(None, machine, 0) is None and cpu_share(2, [], 0) is None


def test_unknown_types_are_not_pinned_and_do_not_move_the_rotation() -> None:
    shares = CpuShares([0, 1, 2, 3])
    assert shares.next("ml.c5.large") == [0, 1]
    assert shares.next("my-own-type") is None and shares.next(None) is None
    assert shares.next("ml.c5.large") == [2, 3]


def test_the_worker_default_follows_the_share_without_batching() -> None:
    assert default_workers((0, 1), batching=False) == 2
    assert default_workers((0, 1), batching=True) == 1
    assert default_workers((), batching=False) == 1
    config = InstanceConfig.from_env({ENV: "1,0", "MH_INSTANCE_BATCHING": "off"})
    assert (config.cpus, config.workers) == ((0, 1), 2)
    explicit = {ENV: "0,1", "MH_INSTANCE_BATCHING": "off", "SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
    assert InstanceConfig.from_env(explicit).workers == 1


def allowed_cpus(pid: int) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError("no Cpus_allowed_list")


def spec(tmp_path: Path, argv: list[str], instance_type: str, **env: str) -> LaunchSpec:
    return LaunchSpec(
        endpoint_name="ep",
        variant_name="AllTraffic",
        model_name="m",
        argv=argv,
        env={INSTANCE_TYPE_ENV: instance_type, **env},
        model_dir=tmp_path,
        log_dir=tmp_path / "logs",
    )


needs_affinity = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or not Path("/proc/self/status").exists(),
    reason="CPU affinity is Linux-only",
)


@pytest.mark.integration
@needs_affinity
def test_a_launched_process_gets_its_share(tmp_path: Path) -> None:
    """Any server (not only modelhost's) is pinned at launch, and told its share."""
    last = max(os.sched_getaffinity(0))
    provider = LocalProcessProvider(CpuShares([last]))
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    instance = provider.start(spec(tmp_path, sleeper, "ml.c5.xlarge"))
    try:
        assert allowed_cpus(instance.pid) == str(last)
    finally:
        asyncio.run(provider.stop(instance, grace_s=5))


@pytest.mark.integration
@needs_affinity
def test_an_instance_pins_itself(tmp_path: Path) -> None:
    """The container applies MH_INSTANCE_CPUS itself, before any thread or worker exists."""
    cores = sorted(os.sched_getaffinity(0))
    provider = LocalProcessProvider(CpuShares(cores[-1:]))
    argv = [sys.executable, "-m", "modelhost.container"]
    env = {"MH_INSTANCE_RUNTIME": "xgboost", "MH_INSTANCE_LOG_LEVEL": "info"}
    instance = provider.start(spec(tmp_path, argv, "ml.m5.large", **env))
    try:
        deadline = time.monotonic() + 60
        log_text = ""
        while time.monotonic() < deadline:
            log_text = instance.log_path.read_text() if instance.log_path.exists() else ""
            if "pinned to cores" in log_text:
                break
            time.sleep(0.1)
        assert f"instance pinned to cores {cores[-1]}" in log_text, log_text
        assert allowed_cpus(instance.pid) == str(cores[-1])
    finally:
        asyncio.run(provider.stop(instance, grace_s=5))
