"""Publishing the RoutingTable the request path reads.

The table is an immutable snapshot: every change builds a new one and replaces the
reference, so a request holds a consistent view without locks.
"""

from __future__ import annotations

from modelhost.control.deployment import Deployment
from modelhost.control.rollout import Rollout
from modelhost.resources.capture import CaptureConfig, parse_capture
from modelhost.resources.endpoints import Endpoint, EndpointConfig
from modelhost.resources.status import EndpointStatus
from modelhost.routing.bandit import BanditBook
from modelhost.routing.table import EndpointRoute, RoutingTable


class RoutePublisher:
    """Builds each endpoint's route from its deployment (or its rollout, mid-update) and
    the bandit's weights; endpoints without fleets get a route that explains why."""

    def __init__(
        self,
        deployments: dict[str, Deployment],
        rollouts: dict[str, Rollout],
        bandits: BanditBook,
    ) -> None:
        self.table = RoutingTable()
        self._deployments = deployments
        self._rollouts = rollouts
        self._bandits = bandits

    def publish(self, name: str) -> None:
        rollout = self._rollouts.get(name)
        if rollout is not None:
            # Shadows keep mirroring from the fleet that is current (blue) meanwhile.
            self.table = self.table.with_endpoint(
                EndpointRoute(
                    name,
                    rollout.routes(),
                    shadows=rollout.blue.shadow_routes(),
                    capture=_capture(rollout.blue.config),
                )
            )
            return
        dep = self._deployments.get(name)
        if dep is None:
            return
        weights = self._bandits.weights(name, dep.production_names())
        self.table = self.table.with_endpoint(
            EndpointRoute(
                name,
                dep.routes(weights),
                shadows=dep.shadow_routes(),
                capture=_capture(dep.config),
            )
        )

    def publish_status(self, endpoint: Endpoint) -> None:
        """Endpoints without fleets still get a route, so invocations get a clear error."""
        if endpoint.name in self._deployments:
            return
        reason = None
        if endpoint.status != EndpointStatus.IN_SERVICE:
            reason = (
                f"Endpoint {endpoint.name} is in {endpoint.status} status; it can be invoked "
                "once it is InService."
            )
        existing = self.table.endpoints.get(endpoint.name)
        if existing is not None and existing.unavailable_reason == reason:
            return
        self.table = self.table.with_endpoint(EndpointRoute(endpoint.name, (), reason))

    def drop(self, name: str) -> None:
        self.table = self.table.without_endpoint(name)


def _capture(config: EndpointConfig) -> CaptureConfig | None:
    """The config's data capture, or None when it captures nothing (disabled, 0 %, or
    neither input nor output), so the request path pays nothing then."""
    capture = parse_capture(config.extra.get("DataCaptureConfig"))
    if capture is None or not capture.enabled or capture.sampling_percentage <= 0:
        return None
    return capture
