"""A route survives the trip to another gateway as JSON."""

from __future__ import annotations

import json
from pathlib import Path

from modelhost.routing.table import EndpointRoute, ShadowRoute, TargetMode, VariantRoute
from modelhost.routing.wire import RemoteTarget, route_from_doc, route_to_doc


def test_route_round_trips_through_json() -> None:
    a = RemoteTarget("i-1", ("10.0.0.5", 9001), TargetMode.SINGLE_MODEL)
    b = RemoteTarget(
        "i-2", ("10.0.0.6", 9002), TargetMode.MULTI_MODEL, {"m2", "m1"}, 5, Path("/h/i-2.log")
    )
    route = EndpointRoute(
        "ep",
        (VariantRoute("A", 0.25, (a,)), VariantRoute("B", 0.75, (b,), "s3://bucket/models/")),
        None,
        (ShadowRoute("S", 0.5, (a,)),),
    )
    back = route_from_doc(json.loads(json.dumps(route_to_doc(route))))
    assert [(v.name, v.weight, v.model_data_prefix) for v in back.variants] == [
        ("A", 0.25, None),
        ("B", 0.75, "s3://bucket/models/"),
    ]
    (got_b,) = back.variants[1].instances
    assert (got_b.instance_id, got_b.address, got_b.mode, got_b.models) == (
        "i-2", ("10.0.0.6", 9002), TargetMode.MULTI_MODEL, {"m1", "m2"},
    )  # fmt: skip
    assert got_b.outstanding == 0  # each gateway counts its own requests
    assert got_b.log_path == Path("/h/i-2.log")  # names its log stream in errors
    assert [(s.name, s.share, s.instances[0].address) for s in back.shadows] == [
        ("S", 0.5, ("10.0.0.5", 9001))
    ]


def test_an_unavailable_route_keeps_its_reason() -> None:
    route = EndpointRoute("ep", (), "Endpoint ep is in Creating status")
    assert route_from_doc(route_to_doc(route)) == route
