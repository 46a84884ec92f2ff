"""The capacity reconciler over fake instances: instance counts that change while the
endpoint stays InService (what the autoscaler writes)."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from modelhost.resources.status import EndpointStatus
from tests.control.harness import Harness, snapshot, variant

A = variant("A", "model-a", count=1)
B = variant("B", "model-b", count=1)


def _with_count(spec: dict[str, Any], name: str, count: int) -> dict[str, Any]:
    out = copy.deepcopy(spec)
    for v in out["Config"]["ProductionVariants"]:
        if v["VariantName"] == name:
            v["InitialInstanceCount"] = count
    return out


def _routed(h: Harness, name: str, variant_name: str) -> int:
    route = h.controller.table.endpoints[name]
    return len(next(v for v in route.variants if v.name == variant_name).instances)


def test_counts_follow_the_config_while_in_service(harness: Harness) -> None:
    h = harness

    async def body() -> None:
        spec = snapshot("cfg", A, B)
        h.put("ep", spec, EndpointStatus.CREATING)
        await h.settle()
        h.put("ep", _with_count(spec, "A", 3), EndpointStatus.IN_SERVICE)
        await h.settle()
        assert len(h.provider.serving("A")) == 3 and _routed(h, "ep", "A") == 3
        rec = h.record("ep")
        assert rec is not None and rec.status == EndpointStatus.IN_SERVICE
        h.put("ep", _with_count(spec, "A", 1), EndpointStatus.IN_SERVICE)
        await h.settle()
        assert len(h.provider.serving("A")) == 1 and _routed(h, "ep", "A") == 1
        assert len(h.provider.serving("B")) == 1

    asyncio.run(body())


def test_instances_that_cannot_start_leave_the_count_as_it_runs(harness: Harness) -> None:
    h = harness

    async def body() -> None:
        spec = snapshot("cfg", A, B)
        h.put("ep", spec, EndpointStatus.CREATING)
        await h.settle()
        h.provider.failing.add("model-b")
        h.put("ep", _with_count(spec, "B", 2), EndpointStatus.IN_SERVICE)
        await h.settle()
        rec = h.record("ep")
        assert rec is not None and rec.status == EndpointStatus.IN_SERVICE
        assert (rec.failure_reason or "").startswith("Scaling variant B to 2 instances failed")
        counts = {
            v["VariantName"]: v["InitialInstanceCount"]
            for v in rec.spec["Config"]["ProductionVariants"]
        }
        assert counts == {"A": 1, "B": 1}
        assert len(h.provider.serving("B")) == 1

    asyncio.run(body())


def test_an_updating_endpoint_is_left_to_its_update(harness: Harness) -> None:
    h = harness

    async def body() -> None:
        spec = snapshot("cfg", A)
        h.put("ep", spec, EndpointStatus.CREATING)
        await h.settle()
        h.put("ep", _with_count(spec, "A", 2), EndpointStatus.UPDATING)
        h.controller.reconcile_once()
        assert h.state.transitions.running() == []
        assert len(h.provider.serving("A")) == 1

    asyncio.run(body())
