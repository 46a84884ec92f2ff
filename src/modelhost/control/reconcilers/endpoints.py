"""Endpoints: create, redeploy after a restart, delete, and tear down what failed."""

from __future__ import annotations

from modelhost.control.deployment import start_deployment
from modelhost.control.reconcilers.base import ControlState
from modelhost.fleet.launch import LaunchError
from modelhost.fleet.variant import StartupError
from modelhost.resources.endpoints import Endpoint
from modelhost.resources.status import EndpointStatus


class EndpointReconciler:
    """Fleets exist exactly for the endpoints that should serve.

    `step`: for each endpoint without a running transition — Creating, or InService
    without fleets (after a restart) → deploy its current config, then InService (or
    Failed with the reason); Deleting → stop its fleets and forget it; Failed with
    fleets → stop them. Fleets of endpoints no longer in the store are stopped. Every
    idle endpoint without fleets gets a route saying why it cannot be invoked. Running
    it again before a transition ends changes nothing."""

    def __init__(self, state: ControlState) -> None:
        self.state = state

    def step(self, endpoints: dict[str, Endpoint]) -> None:
        state = self.state
        for name in list(state.deployments):
            if name not in endpoints and not state.transitions.busy(name):
                state.transitions.spawn(name, state.teardown(name))
        for name, endpoint in endpoints.items():
            if state.transitions.busy(name):
                continue
            state.routes.publish_status(endpoint)
            status = endpoint.status
            if status == EndpointStatus.CREATING or (
                status == EndpointStatus.IN_SERVICE and name not in state.deployments
            ):
                state.transitions.spawn(name, self._create(endpoint))
            elif status == EndpointStatus.DELETING:
                state.transitions.spawn(name, self._delete(name))
            elif status == EndpointStatus.FAILED and name in state.deployments:
                state.transitions.spawn(name, state.teardown(name))

    async def _create(self, endpoint: Endpoint) -> None:
        state = self.state
        name = endpoint.name
        try:
            dep = await start_deployment(
                state.fleets, name, endpoint.current, on_change=lambda: state.publish(name)
            )
        except (StartupError, LaunchError) as exc:
            state.status.set_status(name, EndpointStatus.FAILED, str(exc))
            return
        state.deployments[name] = dep
        state.status.set_status(name, EndpointStatus.IN_SERVICE, None)
        state.publish(name)

    async def _delete(self, name: str) -> None:
        await self.state.teardown(name)
        self.state.status.delete(name)
        self.state.routes.drop(name)
