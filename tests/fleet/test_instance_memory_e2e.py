"""Instance types mean memory: a real-time instance of ml.c5.xlarge runs with its type's
8 GiB as its memory limit, read back from the instance process (cgroup v2 memory.max where
the machine has it, else RLIMIT_DATA); a type larger than this machine gets none."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelhost.fleet.limits import machine_memory_bytes, type_memory_limit
from modelhost.resources.instance_types import GIB, instance_memory_bytes
from modelhost.testing.server import ModelhostServer
from tests.support import FAST_ENV, XGBOOST_IMAGE, ChurnModel, instance_pids, unique


def memory_limit(pid: int) -> int | None:
    """The memory limit of process `pid`: its modelhost cgroup's memory.max, else its
    RLIMIT_DATA (None: unlimited)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line.startswith("0::") and "/modelhost/" in line:
            value = (Path("/sys/fs/cgroup") / line[3:].lstrip("/") / "memory.max").read_text()
            return None if value.strip() == "max" else int(value)
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max data size"):
            soft = line.split()[3]
            return None if soft == "unlimited" else int(soft)
    raise AssertionError(f"no memory limit line for {pid}")


def test_the_limit_is_the_types_memory_unless_the_type_outgrows_the_machine() -> None:
    machine = 24 * GIB
    assert type_memory_limit(instance_memory_bytes("ml.c5.xlarge"), machine) == 8 * GIB
    assert type_memory_limit(instance_memory_bytes("ml.m5.large"), machine) == 8 * GIB
    assert type_memory_limit(instance_memory_bytes("ml.t2.medium"), machine) == 4 * GIB
    assert type_memory_limit(instance_memory_bytes("ml.m5.24xlarge"), machine) is None
    assert type_memory_limit(instance_memory_bytes("ml.nonsense"), machine) is None
    assert type_memory_limit(24 * GIB, machine) is None


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelhostServer]:
    home = tmp_path_factory.mktemp("memory-home")
    with ModelhostServer(home, env=FAST_ENV) as srv:
        yield srv


def _deploy(sm: Any, artifact: str, instance_type: str) -> str:
    name = unique("mem")
    sm.create_model(
        ModelName=name, PrimaryContainer={"Image": XGBOOST_IMAGE, "ModelDataUrl": artifact}
    )
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InitialInstanceCount": 1,
                "InstanceType": instance_type,
            }
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
    )
    return name


@pytest.mark.integration
def test_an_instance_runs_with_its_types_memory_as_its_limit(
    server: ModelhostServer, churn_model: ChurnModel
) -> None:
    sm, rt = server.clients()
    name = _deploy(sm, str(churn_model.artifact), "ml.c5.xlarge")
    pids = instance_pids(server.home, name)
    assert pids
    assert {memory_limit(pid) for pid in pids} == {8 * GIB}
    row = ",".join(str(float(v)) for v in churn_model.data.X[0])
    rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=row)["Body"].read()
    if machine_memory_bytes() < 384 * GIB:
        big = _deploy(sm, str(churn_model.artifact), "ml.m5.24xlarge")
        assert {memory_limit(pid) for pid in instance_pids(server.home, big)} == {None}
