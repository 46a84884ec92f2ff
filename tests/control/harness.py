"""A controller over fake instances and a fake clock, driven pass by pass (no processes)."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

from modelhost.control.controller import Controller
from modelhost.fleet.manager import FleetManager
from modelhost.resources.status import EndpointStatus
from modelhost.settings import Settings
from modelhost.store.metadata import Kind, MetadataStore, Record
from modelhost.testing.fleet import FakeClient, FakeProvider

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


class Clock:
    """Wall time that moves only when told (`advance`)."""

    def __init__(self, start_s: float = 1_700_000_000.0) -> None:
        self.now_s = start_s

    def now(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


def model(name: str) -> dict[str, Any]:
    return {"PrimaryContainer": {"Image": IMAGE}, "ExecutionRoleArn": f"arn:role/{name}"}


def variant(name: str, model_name: str, count: int = 1, weight: float = 1.0) -> dict[str, Any]:
    return {
        "VariantName": name,
        "ModelName": model_name,
        "InitialInstanceCount": count,
        "InitialVariantWeight": weight,
        "InstanceType": "ml.m5.large",
    }


def snapshot(config_name: str, *variants: dict[str, Any], **config: Any) -> dict[str, Any]:
    """An endpoint spec's config snapshot, as ControlPlane stores it."""
    models = {v["ModelName"]: model(v["ModelName"]) for v in variants}
    for shadow in config.get("ShadowProductionVariants", []):
        models[shadow["ModelName"]] = model(shadow["ModelName"])
    return {
        "EndpointConfigName": config_name,
        "Config": {"ProductionVariants": list(variants), **config},
        "Models": models,
    }


class Harness:
    """A controller over a real metadata store and fake instances, run pass by pass."""

    def __init__(self, home: Path) -> None:
        self.settings = Settings(home=home, instance_startup_timeout_s=5.0)
        self.store = MetadataStore(self.settings.metadata_url)
        self.clock = Clock()
        self.provider = FakeProvider()
        self.fleets = FleetManager(
            self.settings, provider=self.provider, client=FakeClient(self.provider)
        )
        self.controller = Controller(self.settings, self.store, self.fleets, clock=self.clock.now)
        self.state = self.controller.state

    def put(self, name: str, spec: dict[str, Any], status: EndpointStatus) -> None:
        rec = self.store.get(Kind.ENDPOINT, name)
        if rec is None:
            self.store.create(
                Record(Kind.ENDPOINT, name, f"arn:{name}", copy.deepcopy(spec), [], status, None)
            )
            return
        rec.spec, rec.status = copy.deepcopy(spec), status
        self.store.save(rec)

    def record(self, name: str) -> Record | None:
        return self.store.get(Kind.ENDPOINT, name)

    async def settle(self, passes: int = 20) -> None:
        """Reconcile until no transition runs (each pass awaits the ones it started)."""
        for _ in range(passes):
            self.controller.reconcile_once()
            running = self.state.transitions.running()
            if not running:
                return
            await asyncio.gather(*running, return_exceptions=True)
            await asyncio.sleep(0)
        raise AssertionError("the controller did not settle")
