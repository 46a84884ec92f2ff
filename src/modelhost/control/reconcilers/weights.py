"""UpdateEndpointWeightsAndCapacities: new weights and instance counts, live."""

from __future__ import annotations

from modelhost.control.reconcilers.base import ControlState
from modelhost.fleet.variant import StartupError
from modelhost.resources.endpoints import Endpoint, EndpointUpdate, WeightChange
from modelhost.resources.status import EndpointStatus


class WeightReconciler:
    """Applies a pending weights-and-capacities update to the running fleets.

    `step`: for each idle endpoint that is Updating with pending weights, one transition
    scales each variant's fleet to its DesiredInstanceCount, then writes the new weights
    and counts into the endpoint's config, clears the pending update, marks it InService
    and publishes the weights in one routing snapshot. If instances fail to start (or
    the endpoint has no fleets), what runs is kept, its counts recorded, and the reason
    given. The pending update is cleared at the end, so a second pass finds nothing."""

    def __init__(self, state: ControlState) -> None:
        self.state = state

    def step(self, endpoints: dict[str, Endpoint]) -> None:
        state = self.state
        for name, endpoint in endpoints.items():
            if state.transitions.busy(name) or endpoint.status != EndpointStatus.UPDATING:
                continue
            if endpoint.update == EndpointUpdate.WEIGHTS:
                assert endpoint.pending_weights is not None
                state.transitions.spawn(name, self._reweight(name, endpoint.pending_weights))

    async def _scale(self, name: str, desired: dict[str, WeightChange]) -> str | None:
        dep = self.state.deployments.get(name)
        if dep is None:
            return "the endpoint's instances are not running"
        for variant, change in desired.items():
            count = change.desired_instance_count
            fleet = dep.fleets[variant]
            spec = dep.config.variant(variant)
            if change.serverless is not None and spec is not None and spec.serverless:
                # ProvisionedConcurrency: start the missing warm instances now; extra
                # ones stop when idle (scaling/serverless_pool.py keeps `desired`).
                warm = change.serverless.get("ProvisionedConcurrency", spec.serverless.warm)
                if warm <= len(fleet.serving()):
                    fleet.desired = warm
                    continue
                count = warm
            if count is None or count == len(fleet.serving()):
                continue
            try:
                await fleet.scale_to(count, drain_s=self.state.drain_s)
            except StartupError as exc:
                return f"variant {variant}: {exc}"
        return None

    async def _reweight(self, name: str, desired: dict[str, WeightChange]) -> None:
        state = self.state
        reason = await self._scale(name, desired)
        dep = state.deployments.get(name)

        def change(endpoint: Endpoint) -> None:
            variants = {v.name: v for v in endpoint.current.config.variants}
            if reason is None:
                for variant, wanted in desired.items():
                    if wanted.desired_weight is not None:
                        variants[variant].initial_weight = wanted.desired_weight
                    if wanted.desired_instance_count is not None:
                        variants[variant].initial_instance_count = wanted.desired_instance_count
                    if wanted.serverless is not None:
                        current = variants[variant].extra.get("ServerlessConfig") or {}
                        variants[variant].extra["ServerlessConfig"] = {
                            **current,
                            **wanted.serverless,
                        }
            elif dep is not None:
                # Counts that did change stay as they are now running.
                for variant, fleet in dep.fleets.items():
                    if variant in variants:
                        variants[variant].initial_instance_count = fleet.desired
            endpoint.pending_weights = None
            endpoint.status = EndpointStatus.IN_SERVICE
            endpoint.failure_reason = f"Update failed: {reason}" if reason else None

        endpoint = state.status.update(name, change)
        if endpoint is None:
            return
        if dep is not None:
            dep.config = endpoint.current.config
        state.publish(name)
