"""Instance counts that change while the endpoint stays InService (the autoscaler's)."""

from __future__ import annotations

from modelhost.control.reconcilers.base import ControlState
from modelhost.fleet.variant import StartupError, VariantFleet
from modelhost.resources.endpoints import Endpoint, EndpointUpdate
from modelhost.resources.status import EndpointStatus


class CapacityReconciler:
    """Each variant's fleet runs the instance count its endpoint's config asks for.

    `step`: for each idle InService endpoint with fleets and no pending update, if a
    production variant's InitialInstanceCount differs from its fleet's desired count, one
    transition scales those fleets: new instances take traffic once they pass /ping;
    removed ones leave the routing table first, finish what they hold (up to the
    invocation timeout), then stop. A serverless variant's count is its
    ProvisionedConcurrency (instances kept warm): a larger one starts instances, a smaller
    one stops none (idle ones stop in the serverless pool), so on-demand instances busy
    with requests are never retired here. If new instances fail to start, the config goes
    back to the count that runs and the endpoint's FailureReason says why; it stays
    InService.
    When counts match, a pass does nothing."""

    def __init__(self, state: ControlState) -> None:
        self.state = state

    def step(self, endpoints: dict[str, Endpoint]) -> None:
        state = self.state
        for name, endpoint in endpoints.items():
            if state.transitions.busy(name) or name in state.rollouts:
                continue
            if endpoint.status != EndpointStatus.IN_SERVICE:
                continue
            if endpoint.update != EndpointUpdate.NONE:
                continue
            dep = state.deployments.get(name)
            if dep is None:
                continue
            wanted = {
                v.name: v.instance_count
                for v in endpoint.current.config.variants
                if v.name in dep.fleets and dep.fleets[v.name].desired != v.instance_count
            }
            if wanted:
                state.transitions.spawn(name, self._scale(name, wanted, endpoint))

    async def _scale(self, name: str, wanted: dict[str, int], endpoint: Endpoint) -> None:
        state = self.state
        dep = state.deployments.get(name)
        if dep is None:
            return
        reason = None
        for variant, count in wanted.items():
            fleet = dep.fleets[variant]
            spec = endpoint.current.config.variant(variant)
            try:
                if spec is not None and spec.serverless is not None:
                    await self._warm(fleet, count)
                else:
                    await fleet.scale_to(count, drain_s=state.drain_s)
            except StartupError as exc:
                reason = f"Scaling variant {variant} to {count} instances failed: {exc}"
        if reason is None:
            # The serverless pool reads ProvisionedConcurrency from the running config.
            dep.config = endpoint.current.config
            state.publish(name)
            return
        running = {v: f.desired for v, f in dep.fleets.items()}

        def change(endpoint: Endpoint) -> None:
            for v in endpoint.current.config.variants:
                if v.name in running and v.serverless is not None:
                    serverless = v.extra["ServerlessConfig"]
                    v.extra["ServerlessConfig"] = {
                        **serverless,
                        "ProvisionedConcurrency": running[v.name],
                    }
                elif v.name in running:
                    v.initial_instance_count = running[v.name]
            endpoint.failure_reason = reason

        state.status.update(name, change)
        state.publish(name)

    async def _warm(self, fleet: VariantFleet, warm: int) -> None:
        """A serverless variant's ProvisionedConcurrency changed: start the missing warm
        instances; never stop one here. Instances beyond `warm` (on-demand ones serving
        requests right now) stop once idle (scaling/serverless_pool.py), not at once."""
        if warm > len(fleet.serving()):
            await fleet.scale_to(warm, drain_s=self.state.drain_s)
        fleet.desired = warm
