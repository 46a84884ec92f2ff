"""Where a Ray-placed instance goes and what it asks Ray for: pure functions.

An instance asks for its instance type's vCPUs and memory (resources/instance_types.csv,
the table the recommender uses) times `ray_resource_scale`, so a small test node can hold
several "ml.m5.large". The instances of one variant spread over the nodes as SageMaker
spreads them over zones: a new instance goes to the live node with the fewest instances of
its variant that still has room for it, never to a node where one of ours just died while
another node is left.

Endpoint instances outlive the gateway that placed them (detached, named actors in a
namespace per metadata store): the next leader adopts the ones that still run its
variant's model and config (`choose_adopted`) and starts only the missing ones.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from modelhost.resources.instance_types import instance_memory_bytes, instance_vcpus

# An instance whose type is unknown (no InstanceType given) asks for one vCPU and no memory.
DEFAULT_VCPUS = 1


@dataclass(frozen=True)
class ResourceRequest:
    """What one instance reserves on its node (Ray's `num_cpus` and `memory`)."""

    num_cpus: float
    memory_bytes: int


@dataclass(frozen=True)
class NodeView:
    """A Ray node as placement sees it: its capacity minus what our instances hold."""

    node_id: str
    address: str
    alive: bool
    free_cpus: float
    free_memory_bytes: float


def resource_request(instance_type: str | None, scale: float) -> ResourceRequest:
    """The type's vCPUs and memory times `scale` (Ray takes fractional CPUs; two decimals)."""
    vcpus = instance_vcpus(instance_type) or DEFAULT_VCPUS
    memory = instance_memory_bytes(instance_type) or 0
    return ResourceRequest(
        num_cpus=max(0.01, round(vcpus * scale, 2)), memory_bytes=int(memory * scale)
    )


def fits(node: NodeView, request: ResourceRequest) -> bool:
    return (
        node.free_cpus + 1e-9 >= request.num_cpus and node.free_memory_bytes >= request.memory_bytes
    )


def choose_node(
    nodes: Iterable[NodeView],
    placed: Mapping[str, int],
    request: ResourceRequest,
    avoid: Collection[str] = (),
) -> str | None:
    """The node for one more instance of a variant that has `placed[node_id]` instances
    per node: the live node that fits with the fewest of them (then the most free CPU, then
    the address, so the choice is deterministic). Nodes in `avoid` (one of ours died there
    lately) only when nothing else fits. None: no node fits now; Ray queues the instance
    until one does."""
    live = [n for n in nodes if n.alive and fits(n, request)]
    preferred = [n for n in live if n.node_id not in avoid] or live
    if not preferred:
        return None
    best = min(preferred, key=lambda n: (placed.get(n.node_id, 0), -n.free_cpus, n.address))
    return best.node_id


def node_views(
    ray_nodes: Iterable[Mapping[str, object]], held: Mapping[str, ResourceRequest]
) -> list[NodeView]:
    """`ray.nodes()` rows as NodeViews; `held` is what our live instances reserve, by node."""
    views = []
    for row in ray_nodes:
        resources = row.get("Resources") or {}
        assert isinstance(resources, Mapping)
        node_id = str(row.get("NodeID", ""))
        mine = held.get(node_id, ResourceRequest(0.0, 0))
        views.append(
            NodeView(
                node_id=node_id,
                address=str(row.get("NodeManagerAddress", "")),
                alive=bool(row.get("Alive")),
                free_cpus=float(resources.get("CPU", 0.0)) - mine.num_cpus,
                free_memory_bytes=float(resources.get("memory", 0.0)) - mine.memory_bytes,
            )
        )
    return views


# --- Instances that outlive their gateway: names, namespaces, adoption ---------------------

ACTOR_PREFIX = "mh"


def ray_namespace(metadata_url: str) -> str:
    """The Ray namespace of the gateways that share one metadata store: they adopt each
    other's instances, and gateways on another store (or another SQLite home) never do.
    The password is left out, so changing it keeps the namespace."""
    without_password = re.sub(r"//([^:/@]*):[^@/]*@", r"//\1@", metadata_url)
    digest = hashlib.sha256(without_password.encode()).hexdigest()[:16]
    return f"modelhost-{digest}"


def actor_prefix(endpoint: str, variant: str) -> str:
    """What the names of a variant's instance actors start with. Endpoint and variant
    names are letters, digits and hyphens, so the colons are unambiguous."""
    return f"{ACTOR_PREFIX}:{endpoint}:{variant}:"


def actor_name(endpoint: str, variant: str, instance_id: str) -> str:
    """The Ray name of one instance's actor: found again by the next leader."""
    return actor_prefix(endpoint, variant) + instance_id


def parse_actor_name(name: str) -> tuple[str, str, str] | None:
    """(endpoint, variant, instance id) of an instance actor's name; None for others."""
    parts = name.split(":")
    if len(parts) != 4 or parts[0] != ACTOR_PREFIX or not all(parts[1:]):
        return None
    return parts[1], parts[2], parts[3]


@dataclass(frozen=True)
class Candidate:
    """A live instance actor of a variant that no gateway tracks (its leader is gone), as
    it describes itself."""

    instance_id: str
    node_id: str
    fingerprint: str
    running: bool
    started_s: float


def choose_adopted(
    candidates: Iterable[Candidate], fingerprint: str, count: int
) -> tuple[list[Candidate], list[Candidate]]:
    """(adopt, stop): at most `count` candidates whose process runs the variant's current
    model and config (`fingerprint`), spread over as many nodes as they are on (each pick
    the node with the fewest adopted so far, then the oldest instance); the others, stale
    or beyond `count`, are to be stopped."""
    pool = sorted(
        (c for c in candidates if c.running and c.fingerprint == fingerprint),
        key=lambda c: (c.started_s, c.instance_id),
    )
    stale = [c for c in candidates if c not in pool]
    adopted: list[Candidate] = []
    per_node: Counter[str] = Counter()
    while pool and len(adopted) < count:
        best = min(pool, key=lambda c: per_node[c.node_id])  # min keeps the oldest first
        pool.remove(best)
        adopted.append(best)
        per_node[best.node_id] += 1
    return adopted, stale + pool
