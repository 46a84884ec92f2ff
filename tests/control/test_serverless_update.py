"""ServerlessUpdateConfig through the weights reconciler (fake instances, no processes)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from modelhost.resources.status import EndpointStatus
from tests.control.harness import Harness, snapshot

SERVERLESS = {
    "VariantName": "AllTraffic",
    "ModelName": "m",
    "ServerlessConfig": {"MemorySizeInMB": 1024, "MaxConcurrency": 4},
}


def test_provisioned_concurrency_and_max_concurrency_change_live(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    async def body() -> None:
        spec = snapshot("cfg", SERVERLESS)
        h.put("ep", spec, EndpointStatus.CREATING)
        await h.settle()
        assert not h.provider.serving()  # InService with no instance
        spec["PendingWeights"] = {
            "AllTraffic": {
                "DesiredWeight": None,
                "DesiredInstanceCount": None,
                "ServerlessUpdateConfig": {"MaxConcurrency": 8, "ProvisionedConcurrency": 2},
            }
        }
        h.put("ep", spec, EndpointStatus.UPDATING)
        await h.settle()
        rec = h.record("ep")
        assert rec is not None and rec.status == EndpointStatus.IN_SERVICE
        config = rec.spec["Config"]["ProductionVariants"][0]["ServerlessConfig"]
        assert config == {"MemorySizeInMB": 1024, "MaxConcurrency": 8, "ProvisionedConcurrency": 2}
        assert len(h.provider.serving()) == 2  # warm now
        dep = h.state.deployments["ep"]
        running = dep.config.variant("AllTraffic")
        assert running is not None and running.serverless is not None
        assert running.serverless.max_concurrency == 8  # what the pool reads
        assert dep.fleets["AllTraffic"].desired == 2

    try:
        asyncio.run(body())
    finally:
        h.store.close()
