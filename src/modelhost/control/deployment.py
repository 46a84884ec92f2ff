"""A deployment: the fleets that serve one endpoint config for one endpoint."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from modelhost.fleet.variant import VariantFleet
from modelhost.routing.table import VariantRoute


@dataclass
class Deployment:
    """The running fleets of one endpoint config (blue or green during an update)."""

    config_name: str
    config: dict[str, Any]
    fleets: dict[str, VariantFleet] = field(default_factory=dict)

    def weights(self) -> dict[str, float]:
        return {
            v["VariantName"]: float(v.get("InitialVariantWeight", 1.0))
            for v in self.config["ProductionVariants"]
        }

    def routes(self) -> tuple[VariantRoute, ...]:
        weights = self.weights()
        return tuple(
            VariantRoute(name, weights.get(name, 1.0), fleet.serving())
            for name, fleet in self.fleets.items()
        )

    async def check(self) -> None:
        await asyncio.gather(*(f.check() for f in self.fleets.values()))

    async def stop(self, drain_s: float) -> None:
        await asyncio.gather(*(f.stop(drain_s) for f in self.fleets.values()))
