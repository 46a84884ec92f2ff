"""Bandits: the in-memory bandit book follows the endpoint records."""

from __future__ import annotations

from modelhost.control.reconcilers.base import ControlState
from modelhost.resources.endpoints import Endpoint
from modelhost.routing.bandit import BanditPolicy


class BanditReconciler:
    """An endpoint has a bandit exactly when its record has a RoutingConfig.

    `step`: bandits of endpoints that are gone or whose RoutingConfig was removed are
    dropped; endpoints with a RoutingConfig but no bandit (after a restart) get one,
    loaded with the stored reward counts. Each change republishes the endpoint's route.
    Bandits that exist already are left as they are (the API keeps them current)."""

    def __init__(self, state: ControlState) -> None:
        self.state = state

    def step(self, endpoints: dict[str, Endpoint]) -> None:
        bandits = self.state.bandits
        for name, _bandit in bandits.items():
            endpoint = endpoints.get(name)
            if endpoint is None or not endpoint.routing:
                bandits.drop(name)
                self.state.publish(name)
        for name, endpoint in endpoints.items():
            routing = endpoint.routing
            if routing and bandits.get(name) is None:
                policy = BanditPolicy.from_json(routing["RoutingConfig"])
                bandits.configure(name, policy, routing.get("Stats"))
                self.state.publish(name)
