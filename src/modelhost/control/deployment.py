"""A deployment: the fleets that serve one endpoint config for one endpoint."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from modelhost.fleet.variant import VariantFleet
from modelhost.routing.table import ShadowRoute, VariantRoute


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

    def shadow_names(self) -> set[str]:
        """Shadow variants have fleets like production ones, flagged by being listed in
        the config's ShadowProductionVariants."""
        return {v["VariantName"] for v in self.config.get("ShadowProductionVariants") or []}

    def production_names(self) -> list[str]:
        return [v["VariantName"] for v in self.config["ProductionVariants"]]

    def routes(self, weights: dict[str, float] | None = None) -> tuple[VariantRoute, ...]:
        """Production routes; `weights` (e.g. a bandit's) replaces the configured ones."""
        weights = {**self.weights(), **(weights or {})}
        shadows = self.shadow_names()
        return tuple(
            VariantRoute(
                name, weights.get(name, 1.0), fleet.serving(), fleet.spec.model_data_prefix
            )
            for name, fleet in self.fleets.items()
            if name not in shadows
        )

    def shadow_routes(self) -> tuple[ShadowRoute, ...]:
        """Sampling share: min(1, shadow weight / sum of production weights)."""
        total = sum(self.weights().values())
        out = []
        for v in self.config.get("ShadowProductionVariants") or []:
            fleet = self.fleets.get(v["VariantName"])
            if fleet is None:
                continue
            weight = float(v.get("InitialVariantWeight", 1.0))
            share = min(1.0, weight / total) if total > 0 else 0.0
            out.append(ShadowRoute(v["VariantName"], share, fleet.serving()))
        return tuple(out)

    async def check(self) -> None:
        await asyncio.gather(*(f.check() for f in self.fleets.values()))

    async def stop(self, drain_s: float) -> None:
        await asyncio.gather(*(f.stop(drain_s) for f in self.fleets.values()))
