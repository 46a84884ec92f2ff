"""A follower's routing source: the leader's snapshots, swapped whole, unchanged routes kept."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from modelhost.gateway.scaleout import GatewayRoutes
from modelhost.routing.table import EndpointRoute, RoutingTable, TargetMode, VariantRoute
from modelhost.routing.wire import RemoteTarget, route_to_doc


def _doc(name: str, weight: float) -> dict[str, Any]:
    target = RemoteTarget("i-1", ("127.0.0.1", 9000), TargetMode.SINGLE_MODEL)
    return route_to_doc(EndpointRoute(name, (VariantRoute("A", weight, (target,)),)))


def test_follower_swaps_in_changed_routes_and_keeps_the_rest() -> None:
    own = RoutingTable({"mine": EndpointRoute("mine", ())})
    routes = GatewayRoutes(SimpleNamespace(table=own))  # type: ignore[arg-type]
    routes.set_remote({"a": _doc("a", 1.0), "b": _doc("b", 1.0)})
    first = routes.table
    assert set(first.endpoints) == {"a", "b"}
    routes.set_remote({"a": _doc("a", 1.0), "b": _doc("b", 1.0)})
    assert routes.table is first  # nothing changed, nothing swapped
    kept = first.endpoints["a"].variants[0].instances[0]
    kept.outstanding = 3  # requests in flight through this follower
    routes.set_remote({"a": _doc("a", 1.0), "b": _doc("b", 0.5)})
    assert routes.table.endpoints["b"].variants[0].weight == 0.5
    assert routes.table.endpoints["a"].variants[0].instances[0] is kept
    routes.set_remote({"a": _doc("a", 1.0)})
    assert set(routes.table.endpoints) == {"a"}
    routes.leading = True  # took the lead: its own controller's snapshots from now on
    assert routes.table is own
