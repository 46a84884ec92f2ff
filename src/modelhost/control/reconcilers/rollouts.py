"""UpdateEndpoint: deploy the pending config beside the current one and move traffic
(all at once, blue/green canary or linear, or rolling), rolling back on alarms."""

from __future__ import annotations

from modelhost.control.deployment import Deployment, start_deployment
from modelhost.control.guardrails import rollback_alarms
from modelhost.control.reconcilers.base import ControlState
from modelhost.control.rollout import Rollout, roll_instances, shift_traffic
from modelhost.fleet.launch import LaunchError
from modelhost.fleet.variant import StartupError
from modelhost.resources.endpoints import ConfigSnapshot, Endpoint, EndpointUpdate
from modelhost.resources.status import EndpointStatus


class RolloutReconciler:
    """Moves an endpoint with a pending config update onto the new config.

    `step`: for each idle endpoint that is Updating with a pending config (and no pending
    weights), one transition starts the new (green) fleets — empty ones for a rolling
    update —, shifts traffic with the deployment's guardrails when blue is running,
    then commits the new config, marks it InService, publishes and retires blue. If
    green fails to start, or an alarm or the execution timeout rolls the update back,
    the endpoint stays InService on its old config with the reason. An Updating endpoint
    with nothing pending is simply marked InService. The transition clears the pending
    update, so a second pass finds nothing to do."""

    def __init__(self, state: ControlState) -> None:
        self.state = state

    def step(self, endpoints: dict[str, Endpoint]) -> None:
        state = self.state
        for name, endpoint in endpoints.items():
            if state.transitions.busy(name) or endpoint.status != EndpointStatus.UPDATING:
                continue
            if endpoint.update == EndpointUpdate.CONFIG:
                assert endpoint.pending is not None
                state.transitions.spawn(name, self._update(name, endpoint.pending))
            elif endpoint.update == EndpointUpdate.NONE:
                state.status.set_status(name, EndpointStatus.IN_SERVICE, None)

    async def _update(self, name: str, pending: ConfigSnapshot) -> None:
        state = self.state
        old = state.deployments.get(name)
        rolling = pending.rolling_policy if old is not None else None
        targets = {v.name: v.instance_count for v in pending.config.variants}
        try:
            # A rolling update starts green empty and grows it batch by batch.
            new = await start_deployment(
                state.fleets,
                name,
                pending,
                on_change=lambda: state.publish(name),
                counts=dict.fromkeys(targets, 0) if rolling else None,
            )
        except (StartupError, LaunchError) as exc:
            # SageMaker keeps the endpoint on the old config and reports why.
            state.status.abandon_update(name, f"Update failed: {exc}")
            return
        if old is not None and (pending.blue_green_policy or rolling):
            reason = await self._guarded_shift(name, old, new, pending, targets)
            if reason is not None:
                await self._roll_back(name, new, reason)
                return
        # Green is healthy (and has baked): switch traffic, then retire blue.
        state.deployments[name] = new
        if not state.status.exists(name):  # deleted meanwhile
            await new.stop(drain_s=0)
            state.deployments.pop(name, None)
            return
        state.status.update(name, lambda endpoint: _commit(endpoint, pending))
        state.publish(name)
        state.status.event(name, "InService", f"now serving {pending.config_name}")
        if old is not None:
            await old.stop(drain_s=state.drain_s)

    async def _guarded_shift(
        self,
        name: str,
        old: Deployment,
        new: Deployment,
        pending: ConfigSnapshot,
        targets: dict[str, int],
    ) -> str | None:
        state = self.state
        alarms = rollback_alarms(pending.deployment_config)

        def event(status: str, message: str) -> None:
            state.status.event(name, status, message)

        rollout = Rollout(old, new)
        state.rollouts[name] = rollout
        try:
            if pending.rolling_policy:
                return await roll_instances(
                    rollout,
                    pending.rolling_policy,
                    targets,
                    alarms=alarms,
                    alarm_state=state.alarm_state,
                    event=event,
                    drain_s=state.drain_s,
                )
            assert pending.blue_green_policy is not None
            return await shift_traffic(
                rollout,
                pending.blue_green_policy,
                alarms=alarms,
                alarm_state=state.alarm_state,
                publish=lambda: state.publish(name),
                event=event,
            )
        finally:
            state.rollouts.pop(name, None)

    async def _roll_back(self, name: str, new: Deployment, reason: str) -> None:
        """All traffic back to blue at once, green stopped, the endpoint InService on its
        old config with the reason."""
        state = self.state
        state.publish(name)
        state.status.event(name, "RollingBack", reason)
        await new.stop(drain_s=state.drain_s)
        endpoint = state.status.abandon_update(name, f"Update rolled back: {reason}")
        if endpoint is not None:
            state.status.event(name, "InService", f"rolled back to {endpoint.current.config_name}")


def _commit(endpoint: Endpoint, pending: ConfigSnapshot) -> None:
    """The pending config becomes current (the retained DeploymentConfig stays)."""
    endpoint.current.config = pending.config
    endpoint.current.models = pending.models
    endpoint.pending = None
    endpoint.status = EndpointStatus.IN_SERVICE
    endpoint.failure_reason = None
