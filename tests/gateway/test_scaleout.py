"""A follower's routing source: the leader's snapshots, swapped whole, unchanged routes kept."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from modelhost.gateway.scaleout import GatewayRoutes, Leadership
from modelhost.routing.table import EndpointRoute, RoutingTable, TargetMode, VariantRoute
from modelhost.routing.wire import RemoteTarget, route_to_doc
from modelhost.settings import Settings
from modelhost.store.metadata import MetadataStore


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


def test_serverless_routes_name_the_leader_to_followers_only() -> None:
    routes = GatewayRoutes(SimpleNamespace(table=RoutingTable()))  # type: ignore[arg-type]
    doc = route_to_doc(EndpointRoute("sls", (VariantRoute("A", 1.0, (), serverless=True),)))
    doc["Leader"] = "http://10.0.0.1:8080"
    routes.set_remote({"sls": doc, "plain": _doc("plain", 1.0)})
    assert routes.table.endpoints["sls"].variants[0].serverless
    assert routes.leader_serving("sls") == "http://10.0.0.1:8080"
    assert routes.leader_serving("plain") is None
    assert routes.leader_serving("unknown") is None
    routes.leading = True  # the leader serves it itself
    assert routes.leader_serving("sls") is None


def test_a_leader_whose_lock_check_hangs_steps_down(tmp_path: Path) -> None:
    """The check is bounded by leader_keepalive_timeout_s: a hung connection counts as
    lost."""

    class HungLock:
        held = True

        def try_acquire(self) -> bool:
            time.sleep(1.0)  # a query on a half-open connection
            return True

    settings = Settings(home=tmp_path, leader_keepalive_timeout_s=0.05)
    store = MetadataStore(settings.metadata_url)
    routes = GatewayRoutes(SimpleNamespace(table=RoutingTable()))  # type: ignore[arg-type]
    leadership = Leadership(settings, store, routes, _nothing)
    leadership.lock = HungLock()  # type: ignore[assignment]
    assert asyncio.run(leadership.still_leading()) is False
    store.close()


async def _nothing() -> None:
    return None


def test_a_new_leader_serves_the_hand_over_routes_until_its_controller_does() -> None:
    """Instances that outlive their gateway (Ray): the routes the last leader published
    stay valid, and serve each endpoint until the controller has its own route for it."""
    controller = SimpleNamespace(table=RoutingTable(), reconciled=False)
    routes = GatewayRoutes(controller)  # type: ignore[arg-type]
    sls = route_to_doc(EndpointRoute("sls", (VariantRoute("A", 1.0, (), serverless=True),)))
    routes.set_remote(
        {"a": _doc("a", 1.0), "b": _doc("b", 1.0), "gone": _doc("gone", 1.0), "sls": sls}
    )
    routes.begin_handover()
    routes.leading = True
    # Before the controller's first pass: every hand-over route (not the serverless one:
    # its instances were the last leader's).
    assert set(routes.table.endpoints) == {"a", "b", "gone"}
    handed = routes.table.endpoints["a"].variants[0].instances[0]
    assert routes.is_alive(handed)  # type: ignore[arg-type]
    # The first pass: "a" and "b" InService being rebuilt (no variants, no reason), "gone"
    # not in the store any more.
    rebuilding = {n: EndpointRoute(n, ()) for n in ("a", "b")}
    controller.table = RoutingTable(rebuilding)
    controller.reconciled = True
    assert routes.table.endpoints["a"].variants[0].instances[0] is handed
    assert set(routes.table.endpoints) == {"a", "b"}
    # "a" adopted: its own route from now on; "b" still handed over.
    adopted = EndpointRoute("a", (VariantRoute("A", 1.0, ()),))
    controller.table = RoutingTable({**rebuilding, "a": adopted})
    assert routes.table.endpoints["a"] is adopted
    assert routes.table.endpoints["b"].variants
    # Once the controller served "a", a later rebuilding route is its own too.
    controller.table = RoutingTable(rebuilding)
    assert routes.table.endpoints["a"] is rebuilding["a"]
