"""The one owner of instances: every fleet, an endpoint variant's or a transform job's.

The controller's deployments and the transform jobs both ask the `FleetManager` for
fleets; it resolves a model's containers into a launch spec (fetching the artifact),
starts the fleet's instances through the one provider and health-checks them with the
one shared client. Shutting the manager down stops whatever fleet is still running,
then kills anything the provider still knows of.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from modelhost.fleet.client import InstanceClient
from modelhost.fleet.instance import Instance, LaunchSpec
from modelhost.fleet.launch import (
    LaunchError,
    build_launch_spec,
    launch_fingerprint,
    node_store_config,
)
from modelhost.fleet.limits import machine_memory_bytes, type_memory_limit
from modelhost.fleet.local import LocalProcessProvider
from modelhost.fleet.multicontainer import (
    GroupClient,
    GroupLaunchSpec,
    GroupProvider,
    build_group_launch_spec,
)
from modelhost.fleet.provider import InstanceProvider
from modelhost.fleet.variant import StartupError, VariantFleet
from modelhost.fleet.zygote import ZygoteProvider
from modelhost.resources.containers import is_multi_container
from modelhost.resources.instance_types import instance_memory_bytes
from modelhost.resources.instances import InstanceState
from modelhost.settings import Settings
from modelhost.store import cache_bound
from modelhost.store.artifacts import ArtifactStore
from modelhost.store.cache_bound import Leased

log = logging.getLogger("modelhost.fleet")

_T = TypeVar("_T")

# The longest a fleet's start waits for its zygote before it spawns instead.
WARM_TIMEOUT_S = 60.0


class FleetManager:
    """Creates, tracks and stops `VariantFleet`s over one `InstanceProvider` and one
    `InstanceClient`. `provider`/`client` default to local processes and a new client;
    tests pass fakes (an in-memory provider, a client whose pings answer at once)."""

    def __init__(
        self,
        settings: Settings,
        artifacts: ArtifactStore | None = None,
        provider: InstanceProvider | None = None,
        client: InstanceClient | None = None,
    ) -> None:
        self.settings = settings
        self.artifacts = artifacts if artifacts is not None else ArtifactStore(settings)
        if provider is None:
            provider = default_provider(settings)
        self.provider: InstanceProvider = provider
        self.client = client if client is not None else InstanceClient()
        self._fleets: set[VariantFleet] = set()
        self._closed = False
        # Told (endpoint or job, variant, seconds) when any instance first answers /ping:
        # the gateway records it as ModelSetupTime.
        self.on_setup: Callable[[str, str, float], None] = lambda _e, _v, _s: None

    def exit_code(self, instance: Instance) -> int | None:
        return self.provider.exit_code(instance)

    async def launch_spec(
        self,
        fleet_name: str,
        variant_name: str,
        model_name: str,
        model_spec: dict[str, Any],
        instance_type: str | None = None,
        *,
        groups: bool = True,
    ) -> LaunchSpec:
        """Resolve the model's container(s) into a launch spec, off the event loop (the
        artifact may be downloaded and unpacked). Raises LaunchError with the reason.
        Without `groups` a multi-container model is refused (transform jobs run one
        container per instance)."""
        # The artifacts' cache entries stay leased while the fleet lives (`_forget`).
        held: list[Leased] = []
        common: dict[str, Any] = {
            "settings": self.settings,
            "endpoint_name": fleet_name,
            "variant_name": variant_name,
            "model_name": model_name,
            "model_spec": model_spec,
            "fetch": self._leasing(self.artifacts.fetch, held),
            "fetch_source": self._leasing(self.artifacts.fetch_source, held),
            # Ray's nodes fetch artifacts themselves, never through the gateway.
            "node_fetch": bool(getattr(self.provider, "fetches_on_node", False)),
        }
        # The instance type sizes a multi-model instance's memory budget.
        build: Callable[[], LaunchSpec] = (
            functools.partial(build_group_launch_spec, **common)
            if groups and is_multi_container(model_spec)
            else functools.partial(build_launch_spec, **common, instance_type=instance_type)
        )
        try:
            spec = await asyncio.to_thread(build)
        except BaseException as exc:
            for got in held:
                got.close()
            if isinstance(exc, LaunchError) or not isinstance(exc, Exception):
                raise
            # Artifact errors and anything unexpected still end as a readable reason.
            raise LaunchError(str(exc)) from exc
        spec.leases = tuple(held)
        spec.fingerprint = launch_fingerprint(model_name, model_spec, instance_type)
        if self.settings.instance_memory_limits and not isinstance(spec, GroupLaunchSpec):
            # The instance type's memory, as on SageMaker (a serverless variant's
            # MemorySizeInMB replaces it later).
            spec.memory_limit_bytes = type_memory_limit(
                instance_memory_bytes(instance_type), machine_memory_bytes()
            )
        return spec

    def _leasing(self, fetch: Callable[[_T], Path], held: list[Leased]) -> Callable[[_T], Path]:
        """`fetch` with the entry it returns leased (in a bounded cache), the lease kept in
        `held`. Local instances die with this gateway, so the gateway's own lease covers
        them: kill -9 of the gateway releases it as their exit does."""

        def leased(arg: _T) -> Path:
            got = self.artifacts.leased(lambda: fetch(arg))
            held.append(got)
            return got.path

        return leased

    def bound_caches(self) -> list[str]:
        """The periodic eviction pass (blocking): this gateway's artifact cache, the
        compiled tier's (`home/compiled`) and script packages' (`home/packages`), and every
        node's where the provider's nodes fetch artifacts themselves (Ray). Log lines of
        what the nodes evicted (this gateway's passes log their own)."""
        self.artifacts.bound(warn=False)
        for name, budget in (
            ("compiled", self.settings.compiled_cache_bytes),
            ("packages", self.settings.packages_cache_bytes),
        ):
            if (self.settings.home / name).is_dir():
                cache_bound.bound(self.settings.home / name, budget, warn=False)
        nodes = getattr(self.provider, "bound_caches", None)
        if nodes is None:
            return []
        return list(nodes(node_store_config(self.settings)))

    def prewarm(self, spec: LaunchSpec) -> None:
        """Get ready to start `spec`'s instances fast (its runtime's zygote, started in
        the background), if the provider can."""
        prewarm = getattr(self.provider, "prewarm", None)
        if prewarm is not None:
            prewarm(spec)

    async def warm(self, spec: LaunchSpec) -> None:
        """Prewarm and wait until `spec`'s starts fork (bounded; after the bound, or if
        the zygote fails, they are spawned): starting a fleet after its zygote is warm
        costs one interpreter start instead of one per instance."""
        warm = getattr(self.provider, "warm", None)
        if warm is not None:
            await warm(spec, min(self.settings.instance_startup_timeout_s, WARM_TIMEOUT_S))

    def fleet(
        self, spec: LaunchSpec, desired: int, on_change: Callable[[], None] = lambda: None
    ) -> VariantFleet:
        """A new (not yet started) fleet of `desired` instances of `spec`, owned here
        until `stop_fleet`."""
        group = isinstance(spec, GroupLaunchSpec)
        fleet = VariantFleet(
            spec,
            desired,
            GroupProvider(self.provider) if group else self.provider,
            GroupClient(self.client) if group else self.client,
            startup_timeout_s=self.settings.instance_startup_timeout_s,
            ping_timeout_s=self.settings.ping_timeout_s,
            unhealthy_threshold=self.settings.unhealthy_threshold,
            shutdown_grace_s=self.settings.shutdown_grace_s,
            on_change=on_change,
            on_setup=lambda i, s: self.on_setup(i.spec.endpoint_name, i.spec.variant_name, s),
        )
        self._fleets.add(fleet)
        return fleet

    async def start_fleet(
        self,
        fleet_name: str,
        variant_name: str,
        model_name: str,
        model_spec: dict[str, Any],
        desired: int,
        *,
        instance_type: str | None = None,
        on_change: Callable[[], None] = lambda: None,
    ) -> VariantFleet:
        """Build, start and wait for a fleet; LaunchError or StartupError (the fleet is
        stopped then) with the reason if it cannot serve."""
        spec = await self.launch_spec(
            fleet_name, variant_name, model_name, model_spec, instance_type
        )
        await self.warm(spec)
        fleet = self.fleet(spec, desired, on_change)
        try:
            await fleet.start()
        except BaseException:
            self._forget(fleet)
            raise
        return fleet

    def _forget(self, fleet: VariantFleet) -> None:
        """The fleet is gone: its artifacts may be evicted again."""
        self._fleets.discard(fleet)
        for got in fleet.spec.leases:
            got.close()

    async def release_fleet(self, fleet: VariantFleet, drain_s: float) -> None:
        """Let go of the fleet when this gateway stops leading (`VariantFleet.release`:
        detached instances keep serving for the next leader); it is forgotten."""
        try:
            await fleet.release(drain_s)
        finally:
            self._forget(fleet)

    async def stop_fleet(self, fleet: VariantFleet, drain_s: float) -> None:
        """Drain (up to `drain_s`) and stop the fleet's instances; it is forgotten."""
        try:
            await fleet.stop(drain_s)
        finally:
            self._forget(fleet)

    @property
    def fleets(self) -> frozenset[VariantFleet]:
        return frozenset(self._fleets)

    def instances(self) -> list[InstanceState]:
        """A snapshot of every instance of every fleet owned here."""
        return [
            InstanceState(
                instance_id=i.instance_id,
                owner=i.spec.endpoint_name,
                variant_name=i.spec.variant_name,
                status=i.status,
                # Loopback today; the scale-out provider's instances carry their host.
                host=str(getattr(i, "host", "127.0.0.1")),
                port=i.port,
                started_s=i.started_s,
            )
            for fleet in self._fleets
            for i in fleet.instances
        ]

    async def close(self, drain_s: float = 0.0) -> None:
        """Shutdown: stop every fleet still running, once; then the last-resort kill."""
        if self._closed:
            return
        self._closed = True
        fleets, self._fleets = list(self._fleets), set()
        results = await asyncio.gather(*(f.stop(drain_s) for f in fleets), return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                log.warning("stopping a fleet at shutdown failed: %s", result)
        for fleet in fleets:
            self._forget(fleet)
        self.provider.kill_all()
        await self.client.close()


def default_provider(settings: Settings) -> InstanceProvider:
    """The provider `settings.fleet` names: local processes (forked from a zygote where
    they can) or Ray actors on a Ray cluster."""
    if settings.fleet == "ray":
        from modelhost.fleet.ray.placement import ray_namespace
        from modelhost.fleet.ray.provider import RayProvider

        # Gateways on one metadata store share a namespace: they adopt each other's instances.
        namespace = ray_namespace(settings.metadata_url)
        return RayProvider(
            settings.ray_address,
            settings.ray_resource_scale,
            namespace=namespace,
            node_cache_dir=settings.ray_node_cache_dir,
            log_mode=settings.ray_instance_logs,
            log_buffer_bytes=settings.ray_log_buffer_bytes,
        )
    sockets = settings.home / "sockets" if settings.instance_unix_sockets else None
    local = LocalProcessProvider(socket_dir=sockets)
    return ZygoteProvider(local, settings.logs_dir) if settings.zygote else local


__all__ = ["FleetManager", "InstanceProvider", "LaunchError", "StartupError"]
