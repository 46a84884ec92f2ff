"""A deployment: the fleets that serve one endpoint config for one endpoint."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from modelhost.fleet.launch import LaunchError
from modelhost.fleet.manager import FleetManager
from modelhost.fleet.variant import StartupError, VariantFleet
from modelhost.resources.endpoints import ConfigSnapshot, EndpointConfig
from modelhost.routing.table import ShadowRoute, VariantRoute


@dataclass
class Deployment:
    """The running fleets of one endpoint config (blue or green during an update).
    `manager` owns the fleets; stopping the deployment hands them back to it."""

    config_name: str
    config: EndpointConfig
    fleets: dict[str, VariantFleet] = field(default_factory=dict)
    manager: FleetManager | None = None

    def weights(self) -> dict[str, float]:
        return self.config.weights()

    def shadow_names(self) -> set[str]:
        """Shadow variants have fleets like production ones, flagged by being listed in
        the config's ShadowProductionVariants."""
        return {v.name for v in self.config.shadow_variants}

    def production_names(self) -> list[str]:
        return self.config.production_names()

    def routes(self, weights: dict[str, float] | None = None) -> tuple[VariantRoute, ...]:
        """Production routes; `weights` (e.g. a bandit's) replaces the configured ones."""
        weights = {**self.weights(), **(weights or {})}
        shadows = self.shadow_names()
        return tuple(
            VariantRoute(
                name,
                weights.get(name, 1.0),
                fleet.serving(),
                fleet.spec.model_data_prefix,
                serverless=self.is_serverless(name),
            )
            for name, fleet in self.fleets.items()
            if name not in shadows
        )

    def is_serverless(self, name: str) -> bool:
        variant = self.config.variant(name)
        return variant is not None and variant.serverless is not None

    def shadow_routes(self) -> tuple[ShadowRoute, ...]:
        """Sampling share: min(1, shadow weight / sum of production weights)."""
        total = sum(self.weights().values())
        out = []
        for v in self.config.shadow_variants:
            fleet = self.fleets.get(v.name)
            if fleet is None:
                continue
            share = min(1.0, v.weight / total) if total > 0 else 0.0
            out.append(ShadowRoute(v.name, share, fleet.serving()))
        return tuple(out)

    async def check(self) -> None:
        await asyncio.gather(*(f.check() for f in self.fleets.values()))

    async def release(self, drain_s: float) -> None:
        """This gateway stops leading: instances that outlive it keep serving for the
        next leader to adopt; the others stop (`VariantFleet.release`)."""
        manager = self.manager
        await asyncio.gather(
            *(
                manager.release_fleet(f, drain_s) if manager is not None else f.release(drain_s)
                for f in self.fleets.values()
            )
        )

    async def stop(self, drain_s: float) -> None:
        manager = self.manager
        await asyncio.gather(
            *(
                manager.stop_fleet(f, drain_s) if manager is not None else f.stop(drain_s)
                for f in self.fleets.values()
            )
        )


async def start_deployment(
    manager: FleetManager,
    endpoint: str,
    snapshot: ConfigSnapshot,
    on_change: Callable[[], None],
    counts: dict[str, int] | None = None,
) -> Deployment:
    """Start every variant's fleet (`counts` overrides InitialInstanceCount) and wait
    until all serve; on any failure stop what started and raise StartupError or
    LaunchError with a readable reason."""
    config = snapshot.config
    dep = Deployment(config_name=config.name, config=config, manager=manager)
    try:
        for variant in config.all_variants:
            model = snapshot.models[variant.model_name]
            spec = await manager.launch_spec(
                endpoint, variant.name, model.name, model.spec, variant.instance_type
            )
            count = (counts or {}).get(variant.name, variant.instance_count)
            serverless = variant.serverless
            # Its instances outlive this gateway where the provider can do that (Ray), and
            # the next leader adopts them. A serverless variant's live in the leader's pool.
            spec.detached = serverless is None
            if serverless is not None:
                # MemorySizeInMB is each instance's memory limit; a request that finds no
                # idle instance waits for a forked one (the zygote), not a fresh process.
                spec.memory_limit_bytes = serverless.memory_bytes
                count = serverless.warm
            # Its runtime's zygote: this fleet's instances, its replacements and its
            # scale-out are forked from it (fleet/zygote.py).
            if count:
                await manager.warm(spec)
            else:
                manager.prewarm(spec)
            dep.fleets[variant.name] = manager.fleet(spec, count, on_change)
        await asyncio.gather(*(f.start() for f in dep.fleets.values()))
    except BaseException as exc:
        await dep.stop(drain_s=0)
        if isinstance(exc, StartupError | LaunchError):
            raise
        if isinstance(exc, Exception):
            raise LaunchError(str(exc)) from exc
        raise
    return dep
