"""Ray placement as pure functions: what an instance asks for, and which node it goes to."""

from __future__ import annotations

from modelhost.fleet.ray.placement import (
    Candidate,
    NodeView,
    ResourceRequest,
    actor_name,
    actor_prefix,
    choose_adopted,
    choose_node,
    node_views,
    parse_actor_name,
    ray_namespace,
    resource_request,
)

GIB = 1024**3


def _node(node_id: str, cpus: float = 1.0, memory: float = 2 * GIB, alive: bool = True) -> NodeView:
    return NodeView(node_id, f"127.0.1.{node_id[-1]}", alive, cpus, memory)


def test_request_is_the_instance_types_vcpus_and_memory_scaled() -> None:
    assert resource_request("ml.m5.large", 1.0) == ResourceRequest(2.0, 8 * GIB)
    assert resource_request("ml.m5.large", 0.1) == ResourceRequest(0.2, int(0.8 * GIB))
    # Unknown or no type: one vCPU, no memory reservation.
    assert resource_request(None, 0.5) == ResourceRequest(0.5, 0)
    # Never zero CPUs: Ray would place any number of them on one node.
    assert resource_request("ml.t2.medium", 0.0001).num_cpus == 0.01


def test_a_variant_spreads_over_the_nodes() -> None:
    nodes = [_node("n1"), _node("n2"), _node("n3")]
    request = ResourceRequest(0.2, GIB // 2)
    placed: dict[str, int] = {}
    for _ in range(3):
        chosen = choose_node(nodes, placed, request)
        assert chosen is not None
        placed[chosen] = placed.get(chosen, 0) + 1
    assert placed == {"n1": 1, "n2": 1, "n3": 1}
    # A fourth goes next to one of them, the one with the most free CPU.
    roomy = [_node("n1", 0.5), _node("n2", 0.9), _node("n3", 0.4)]
    assert choose_node(roomy, placed, request) == "n2"


def test_dead_full_and_suspect_nodes_are_passed_over() -> None:
    request = ResourceRequest(0.5, GIB)
    nodes = [_node("n1", alive=False), _node("n2", cpus=0.2), _node("n3"), _node("n4")]
    assert choose_node(nodes, {}, request, avoid={"n3"}) == "n4"
    # A suspect node is still better than none.
    assert choose_node(nodes[:3], {}, request, avoid={"n3"}) == "n3"
    # Nothing fits: Ray queues it (None).
    assert choose_node([_node("n1", cpus=0.1)], {}, request) is None
    assert choose_node([_node("n1", memory=GIB / 2)], {}, request) is None


def test_node_views_subtract_what_our_instances_hold() -> None:
    rows = [
        {"NodeID": "n1", "NodeManagerAddress": "127.0.1.1", "Alive": True,
         "Resources": {"CPU": 1.0, "memory": 2.0 * GIB}},
        {"NodeID": "n2", "NodeManagerAddress": "127.0.1.2", "Alive": False, "Resources": {}},
    ]  # fmt: skip
    views = node_views(rows, {"n1": ResourceRequest(0.4, GIB)})
    assert views == [
        NodeView("n1", "127.0.1.1", True, 0.6, float(GIB)),
        NodeView("n2", "127.0.1.2", False, 0.0, 0.0),
    ]


def test_the_namespace_is_one_per_metadata_store_whatever_its_password() -> None:
    a = ray_namespace("postgresql+psycopg://mh:secret@db:5432/modelhost")
    assert a == ray_namespace("postgresql+psycopg://mh:rotated@db:5432/modelhost")
    assert a != ray_namespace("postgresql+psycopg://mh:secret@db:5432/other")
    assert a != ray_namespace("sqlite:////home/a/modelhost.db")
    assert a.startswith("modelhost-")


def test_actor_names_group_a_variants_instances() -> None:
    name = actor_name("ep-1", "AllTraffic", "i-0123")
    assert name.startswith(actor_prefix("ep-1", "AllTraffic"))
    assert not name.startswith(actor_prefix("ep-1", "All"))
    assert not name.startswith(actor_prefix("ep", "1"))
    assert parse_actor_name(name) == ("ep-1", "AllTraffic", "i-0123")
    assert parse_actor_name("something:else") is None


def _candidate(
    instance_id: str, node: str, fingerprint: str = "f1", running: bool = True, started: float = 0
) -> Candidate:
    return Candidate(instance_id, node, fingerprint, running, started)


def test_adoption_keeps_current_running_instances_spread_and_stops_the_rest() -> None:
    found = [
        _candidate("i-old", "n1", started=1),
        _candidate("i-twin", "n1", started=2),
        _candidate("i-n2", "n2", started=3),
        _candidate("i-stale", "n3", fingerprint="f0"),
        _candidate("i-exited", "n3", running=False),
    ]
    adopt, stop = choose_adopted(found, "f1", count=2)
    # One per node before a second on any node; the oldest first.
    assert [c.instance_id for c in adopt] == ["i-old", "i-n2"]
    assert {c.instance_id for c in stop} == {"i-twin", "i-stale", "i-exited"}
    adopt, stop = choose_adopted(found, "f1", count=5)
    assert [c.instance_id for c in adopt] == ["i-old", "i-n2", "i-twin"]
    adopt, stop = choose_adopted(found, "f2", count=3)
    assert adopt == [] and len(stop) == 5
