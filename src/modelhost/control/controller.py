"""The controller: reconciles endpoints in the store with running fleets.

Desired state lives in the metadata store (endpoint records with a status and a config
snapshot). Each reconcile pass looks at every endpoint and starts at most one task per
endpoint that moves it one step: Creating → deploy → InService (or Failed); InService
without fleets (after a restart) → redeploy; Updating → deploy the new config, switch
traffic once it answers /ping, drain and stop the old fleets; Deleting → stop and forget.
Passes are idempotent; a pass with nothing to do does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from modelhost.control.deployment import Deployment
from modelhost.control.guardrails import rollback_alarms
from modelhost.control.rollout import Rollout, roll_instances, shift_traffic
from modelhost.fleet.client import InstanceClient
from modelhost.fleet.instance import Instance
from modelhost.fleet.launch import LaunchError, LaunchSpec, build_launch_spec
from modelhost.fleet.local import LocalProcessProvider
from modelhost.fleet.multicontainer import (
    GroupClient,
    GroupProvider,
    build_group_launch_spec,
)
from modelhost.fleet.variant import StartupError, VariantFleet
from modelhost.resources.containers import is_multi_container
from modelhost.resources.status import EndpointStatus
from modelhost.routing.bandit import BanditBook, BanditPolicy
from modelhost.routing.table import EndpointRoute, RoutingTable
from modelhost.settings import Settings
from modelhost.store.artifacts import ArtifactStore
from modelhost.store.metadata import Kind, MetadataStore, Record

log = logging.getLogger("modelhost.control")

_MAX_REASON = 1024
EVENT_HISTORY_MAX = 100


class Controller:
    """Owns the fleets and publishes the routing table the request path reads."""

    def __init__(self, settings: Settings, store: MetadataStore) -> None:
        self.settings = settings
        self.store = store
        self.artifacts = ArtifactStore(settings)
        self.provider = LocalProcessProvider()
        self.client = InstanceClient()
        self.table = RoutingTable()
        self.rand = random.random
        # Endpoints whose weights follow rewards (native RoutingConfig in the record).
        self.bandits = BanditBook(time.monotonic, np.random.default_rng())
        # Set by the gateway: the state of a named alarm (None if there is no such alarm).
        self.alarm_state: Callable[[str], str | None] = lambda _name: None
        self._deployments: dict[str, Deployment] = {}
        self._rollouts: dict[str, Rollout] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        self._loops = [
            asyncio.ensure_future(self._reconcile_loop()),
            asyncio.ensure_future(self._health_loop()),
        ]

    async def stop(self) -> None:
        for task in self._loops + list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._loops, *self._tasks.values(), return_exceptions=True)
        await asyncio.gather(
            *(d.stop(drain_s=5.0) for d in self._deployments.values()),
            return_exceptions=True,
        )
        self._deployments.clear()
        self.provider.kill_all()
        await self.client.close()

    def wake(self) -> None:
        self._wake.set()

    def abort(self, name: str) -> None:
        """Cancel a running transition (e.g. a create that a delete overtakes)."""
        task = self._tasks.get(name)
        if task is not None:
            task.cancel()

    # --- loops -----------------------------------------------------------------------

    async def _reconcile_loop(self) -> None:
        while True:
            try:
                self.reconcile_once()
            except Exception:
                log.exception("reconcile pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.reconcile_interval_s)
            self._wake.clear()

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.health_check_interval_s)
            for name, dep in list(self._deployments.items()):
                rollout = self._rollouts.get(name)
                if name in self._tasks and rollout is None:
                    continue  # a transition owns this endpoint right now
                # While a guarded rollout bakes (minutes, maybe), both fleets keep being
                # checked and healed; nothing else changes them meanwhile.
                fleets = [dep] if rollout is None else [rollout.blue, rollout.green]
                try:
                    for deployment in fleets:
                        await deployment.check()
                except Exception:
                    log.exception("health check of %s failed", name)

    def reconcile_once(self) -> None:
        records = {r.name: r for r in self.store.list(Kind.ENDPOINT)}
        self._sync_bandits(records)
        for name in list(self._deployments):
            if name not in records and name not in self._tasks:
                self._spawn(name, self._teardown(name))
        for name, rec in records.items():
            if name in self._tasks:
                continue
            status = EndpointStatus(rec.status or EndpointStatus.CREATING)
            if status == EndpointStatus.CREATING or (
                status == EndpointStatus.IN_SERVICE and name not in self._deployments
            ):
                self._spawn(name, self._create(rec))
            elif status == EndpointStatus.UPDATING and "PendingWeights" in rec.spec:
                self._spawn(name, self._reweight(rec))
            elif status == EndpointStatus.UPDATING:
                self._spawn(name, self._update(rec))
            elif status == EndpointStatus.DELETING:
                self._spawn(name, self._delete(rec))
            elif status == EndpointStatus.FAILED and name in self._deployments:
                self._spawn(name, self._teardown(name))
            self._publish_status(rec)

    def _sync_bandits(self, records: dict[str, Record]) -> None:
        """Bandits follow the records: loaded after a restart, dropped with the endpoint
        or when its RoutingConfig is removed."""
        for name, _bandit in self.bandits.items():
            rec = records.get(name)
            if rec is None or not rec.spec.get("Routing"):
                self.bandits.drop(name)
                self.publish(name)
        for name, rec in records.items():
            routing = rec.spec.get("Routing")
            if routing and self.bandits.get(name) is None:
                self.bandits.configure(
                    name, BanditPolicy.from_json(routing["RoutingConfig"]), routing.get("Stats")
                )
                self.publish(name)

    def _spawn(self, name: str, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks[name] = task

        def done(t: asyncio.Task[None]) -> None:
            if self._tasks.get(name) is t:
                del self._tasks[name]
            if not t.cancelled() and t.exception() is not None:
                log.error("transition of %s failed", name, exc_info=t.exception())
            self.wake()

        task.add_done_callback(done)

    # --- transitions -----------------------------------------------------------------

    async def _create(self, rec: Record) -> None:
        try:
            dep = await self._deploy(rec.name, rec.spec["EndpointConfigName"], rec.spec)
        except (StartupError, LaunchError) as exc:
            self._set_status(rec.name, EndpointStatus.FAILED, str(exc))
            return
        self._deployments[rec.name] = dep
        self._set_status(rec.name, EndpointStatus.IN_SERVICE, None)
        self.publish(rec.name)

    async def _update(self, rec: Record) -> None:
        pending = rec.spec.get("Pending")
        if not pending:
            self._set_status(rec.name, EndpointStatus.IN_SERVICE, None)
            return
        old = self._deployments.get(rec.name)
        deployment_config = pending.get("DeploymentConfig") or {}
        rolling = deployment_config.get("RollingUpdatePolicy") if old is not None else None
        targets = {
            v["VariantName"]: int(v.get("InitialInstanceCount", 1))
            for v in pending["Config"]["ProductionVariants"]
        }
        try:
            # A rolling update starts green empty and grows it batch by batch.
            new = await self._deploy(
                rec.name,
                pending["EndpointConfigName"],
                pending,
                counts=dict.fromkeys(targets, 0) if rolling else None,
            )
        except (StartupError, LaunchError) as exc:
            # SageMaker keeps the endpoint on the old config and reports why.
            current = self.store.get(Kind.ENDPOINT, rec.name)
            if current is not None:
                current.spec.pop("Pending", None)
                current.status = EndpointStatus.IN_SERVICE
                current.failure_reason = _clip(f"Update failed: {exc}")
                current.modified_s = time.time()
                self.store.save(current)
            return
        policy = deployment_config.get("BlueGreenUpdatePolicy")
        if old is not None and (policy or rolling):
            reason = await self._guarded_shift(rec.name, old, new, pending, targets)
            if reason is not None:
                await self._roll_back(rec.name, new, reason)
                return
        # Green is healthy (and has baked): switch traffic, then retire blue.
        self._deployments[rec.name] = new
        current = self.store.get(Kind.ENDPOINT, rec.name)
        if current is None:  # deleted meanwhile
            await new.stop(drain_s=0)
            self._deployments.pop(rec.name, None)
            return
        current.spec.update(
            EndpointConfigName=pending["EndpointConfigName"],
            Config=pending["Config"],
            Models=pending["Models"],
        )
        current.spec.pop("Pending", None)
        current.status = EndpointStatus.IN_SERVICE
        current.failure_reason = None
        current.modified_s = time.time()
        self.store.save(current)
        self.publish(rec.name)
        self._event(rec.name, "InService", f"now serving {pending['EndpointConfigName']}")
        if old is not None:
            await old.stop(drain_s=self.settings.invocation_timeout_s)

    async def _guarded_shift(
        self,
        name: str,
        old: Deployment,
        new: Deployment,
        pending: dict[str, Any],
        targets: dict[str, int],
    ) -> str | None:
        config = pending.get("DeploymentConfig") or {}
        rollout = Rollout(old, new)
        self._rollouts[name] = rollout
        try:
            if config.get("RollingUpdatePolicy"):
                return await roll_instances(
                    rollout,
                    config["RollingUpdatePolicy"],
                    targets,
                    alarms=rollback_alarms(config),
                    alarm_state=self.alarm_state,
                    event=lambda status, message: self._event(name, status, message),
                    drain_s=self.settings.invocation_timeout_s,
                )
            return await shift_traffic(
                rollout,
                config["BlueGreenUpdatePolicy"],
                alarms=rollback_alarms(config),
                alarm_state=self.alarm_state,
                publish=lambda: self.publish(name),
                event=lambda status, message: self._event(name, status, message),
            )
        finally:
            self._rollouts.pop(name, None)

    async def _roll_back(self, name: str, new: Deployment, reason: str) -> None:
        """All traffic back to blue at once, green stopped, the endpoint InService on its
        old config with the reason."""
        self.publish(name)
        self._event(name, "RollingBack", reason)
        await new.stop(drain_s=self.settings.invocation_timeout_s)
        current = self.store.get(Kind.ENDPOINT, name)
        if current is None or current.status == EndpointStatus.DELETING:
            return
        current.spec.pop("Pending", None)
        current.status = EndpointStatus.IN_SERVICE
        current.failure_reason = _clip(f"Update rolled back: {reason}")
        current.modified_s = time.time()
        self.store.save(current)
        self._event(name, "InService", f"rolled back to {current.spec['EndpointConfigName']}")

    def _event(self, name: str, status: str, message: str) -> None:
        """Append to the endpoint's event history (and its pending deployment's stage)."""
        rec = self.store.get(Kind.ENDPOINT, name)
        if rec is None:
            return
        now = time.time()
        events = rec.spec.setdefault("Events", [])
        events.append({"Time": now, "Status": status, "Message": message})
        del events[:-EVENT_HISTORY_MAX]
        if rec.spec.get("Pending"):
            rec.spec["Pending"]["Stage"] = {
                "Status": status,
                "StatusMessage": message,
                "StartTime": now,
            }
        self.store.save(rec)

    async def _reweight(self, rec: Record) -> None:
        """UpdateEndpointWeightsAndCapacities: scale each variant's fleet, then publish the
        new weights in one routing snapshot; on failure keep what runs and say why."""
        desired: dict[str, dict[str, Any]] = rec.spec["PendingWeights"]
        dep = self._deployments.get(rec.name)
        reason = None
        if dep is None:
            reason = "the endpoint's instances are not running"
        else:
            for variant, change in desired.items():
                count = change.get("DesiredInstanceCount")
                fleet = dep.fleets[variant]
                if count is None or count == len(fleet.serving()):
                    continue
                try:
                    await fleet.scale_to(int(count), drain_s=self.settings.invocation_timeout_s)
                except StartupError as exc:
                    reason = f"variant {variant}: {exc}"
                    break
        current = self.store.get(Kind.ENDPOINT, rec.name)
        if current is None or current.status == EndpointStatus.DELETING:
            return
        variants = {v["VariantName"]: v for v in current.spec["Config"]["ProductionVariants"]}
        if reason is None:
            for variant, change in desired.items():
                if change.get("DesiredWeight") is not None:
                    variants[variant]["InitialVariantWeight"] = float(change["DesiredWeight"])
                if change.get("DesiredInstanceCount") is not None:
                    variants[variant]["InitialInstanceCount"] = int(change["DesiredInstanceCount"])
        elif dep is not None:
            # Counts that did change stay as they are now running.
            for variant, fleet in dep.fleets.items():
                if variant in variants:
                    variants[variant]["InitialInstanceCount"] = fleet.desired
        current.spec.pop("PendingWeights", None)
        current.status = EndpointStatus.IN_SERVICE
        current.failure_reason = _clip(f"Update failed: {reason}") if reason else None
        current.modified_s = time.time()
        self.store.save(current)
        if dep is not None:
            dep.config = current.spec["Config"]
        self.publish(rec.name)

    async def _delete(self, rec: Record) -> None:
        await self._teardown(rec.name)
        self.store.delete(Kind.ENDPOINT, rec.name)
        self.table = self.table.without_endpoint(rec.name)

    async def _teardown(self, name: str) -> None:
        dep = self._deployments.pop(name, None)
        self.table = self.table.without_endpoint(name)
        if dep is not None:
            await dep.stop(drain_s=self.settings.invocation_timeout_s)

    async def _deploy(
        self,
        endpoint: str,
        config_name: str,
        snapshot: dict[str, Any],
        counts: dict[str, int] | None = None,
    ) -> Deployment:
        """Start every variant's fleet (`counts` overrides InitialInstanceCount)."""
        config = snapshot["Config"]
        models = snapshot["Models"]
        dep = Deployment(config_name=config_name, config=config)
        try:
            shadows = config.get("ShadowProductionVariants") or []
            for variant in [*config["ProductionVariants"], *shadows]:
                model_name = variant["ModelName"]
                multi = is_multi_container(models[model_name])
                common: dict[str, Any] = {
                    "settings": self.settings,
                    "endpoint_name": endpoint,
                    "variant_name": variant["VariantName"],
                    "model_name": model_name,
                    "model_spec": models[model_name],
                    "fetch": self.artifacts.fetch,
                    "fetch_source": self.artifacts.fetch_source,
                }
                # The instance type sizes a multi-model instance's memory budget.
                build: Callable[[], LaunchSpec] = (
                    functools.partial(build_group_launch_spec, **common)
                    if multi
                    else functools.partial(
                        build_launch_spec, **common, instance_type=variant.get("InstanceType")
                    )
                )
                spec = await asyncio.to_thread(build)
                dep.fleets[variant["VariantName"]] = VariantFleet(
                    spec,
                    (counts or {}).get(
                        variant["VariantName"], int(variant.get("InitialInstanceCount", 1))
                    ),
                    GroupProvider(self.provider) if multi else self.provider,
                    GroupClient(self.client) if multi else self.client,
                    startup_timeout_s=self.settings.instance_startup_timeout_s,
                    ping_timeout_s=self.settings.ping_timeout_s,
                    unhealthy_threshold=self.settings.unhealthy_threshold,
                    shutdown_grace_s=self.settings.shutdown_grace_s,
                    on_change=lambda: self.publish(endpoint),
                )
            await asyncio.gather(*(f.start() for f in dep.fleets.values()))
        except BaseException as exc:
            await dep.stop(drain_s=0)
            if isinstance(exc, StartupError | LaunchError):
                raise
            if isinstance(exc, Exception):
                # Artifact errors and anything unexpected still end as a readable reason.
                raise LaunchError(str(exc)) from exc
            raise
        return dep

    # --- status and routing ------------------------------------------------------------

    def _set_status(self, name: str, status: EndpointStatus, reason: str | None) -> None:
        rec = self.store.get(Kind.ENDPOINT, name)
        if rec is None or rec.status == EndpointStatus.DELETING:
            return
        rec.status = status
        rec.failure_reason = _clip(reason) if reason else None
        rec.modified_s = time.time()
        self.store.save(rec)
        self._publish_status(rec)

    def _publish_status(self, rec: Record) -> None:
        """Endpoints without fleets still get a route, so invocations get a clear error."""
        if rec.name in self._deployments:
            return
        status = rec.status or EndpointStatus.CREATING
        reason = None
        if status != EndpointStatus.IN_SERVICE:
            reason = (
                f"Endpoint {rec.name} is in {status} status; it can be invoked once it is "
                "InService."
            )
        existing = self.table.endpoints.get(rec.name)
        if existing is not None and existing.unavailable_reason == reason:
            return
        self.table = self.table.with_endpoint(EndpointRoute(rec.name, (), reason))

    def publish(self, name: str) -> None:
        rollout = self._rollouts.get(name)
        if rollout is not None:
            # Shadows keep mirroring from the fleet that is current (blue) meanwhile.
            self.table = self.table.with_endpoint(
                EndpointRoute(name, rollout.routes(), shadows=rollout.blue.shadow_routes())
            )
            return
        dep = self._deployments.get(name)
        if dep is None:
            return
        weights = self.bandits.weights(name, dep.production_names())
        self.table = self.table.with_endpoint(
            EndpointRoute(name, dep.routes(weights), shadows=dep.shadow_routes())
        )

    def report_unreachable(self, endpoint: str, instance: Instance) -> None:
        dep = self._deployments.get(endpoint)
        if dep is None:
            return
        fleet = dep.fleets.get(instance.spec.variant_name)
        if fleet is not None:
            fleet.mark_unreachable(instance)

    def deployment(self, endpoint: str) -> Deployment | None:
        return self._deployments.get(endpoint)


def _clip(text: str | None) -> str | None:
    if text is None:
        return None
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."
