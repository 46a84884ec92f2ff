"""Artifacts on a Ray node: fetched by the node from the artifact store, never by the gateway.

The gateway's side (`launch_artifact`) puts the container's ModelDataUrl (or
ModelDataSource) and the artifact store's configuration into the actor's launch; the
node's side (`node_model`) fetches it with the same `ArtifactStore` the gateway uses
(s3:// with boto3, `file://` and plain paths read on the node) into a cache on the node's
own disk, then the actor starts the instance on it. The cache is the store's
content-addressed one: an S3 object is keyed by its URL, ETag and size, each entry is
built in a scratch directory under a file lock and renamed into place, so the instances
of one node share one download and one unpack, also when they start at the same time.

The cache lives under `<ray_node_cache_dir>/<node address>/`: a subdirectory per node, so
nodes that share a filesystem (or one machine, as the local cluster's raylets do) still
keep their own copies. It is bounded (`ray_node_cache_bytes`, `store/cache_bound.py`):
the instance process holds a lease on the entry it runs from (`NodeModel.lease`, handed
to it by the actor), and each start evicts the least recently used entries nobody leases;
so does the leader's periodic pass (`bound_node_caches`: a task on every node, every
`artifact_cache_evict_interval_s`).

A `command:` server's artifact comes the same way; its argv names the program under the
gateway's placeholder model directory, which `node_argv` points at the node's copy. A
launch without an artifact section uses the gateway's directory as before, which the node
must then see at the same path.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelhost.fleet.instance import LaunchSpec
from modelhost.store.cache_bound import Lease, bound, fetch_leased

log = logging.getLogger("modelhost.artifacts")

CACHE_NAME = "modelhost-artifacts"
# The instance variable a multi-model instance caches the models it loads under.
INSTANCE_CACHE_ENV = "MH_INSTANCE_ARTIFACT_CACHE_DIR"
INSTANCE_CACHE_BYTES_ENV = "MH_INSTANCE_ARTIFACT_CACHE_BYTES"
_LEASE_ATTEMPTS = 3


@dataclass(frozen=True)
class NodeModel:
    """An instance's model directory on this node, the variables that point it there,
    and a line for the instance log saying how it got there (empty: nothing to say)."""

    model_dir: Path
    env: dict[str, str]
    note: str = ""
    # Held while the instance uses the entry (the actor hands it to the instance process).
    lease: Lease | None = None


def launch_artifact(spec: LaunchSpec) -> dict[str, Any] | None:
    """The launch's artifact section (plain values: it is pickled to the node)."""
    artifact = spec.node_artifact
    if artifact is None:
        return None
    return {
        "model_data_url": artifact.model_data_url,
        "model_data_source": artifact.model_data_source,
        "store": dict(artifact.store),
    }


def node_cache_dir(store: Mapping[str, Any], node: str) -> Path:
    """This node's artifact cache (see the module docstring)."""
    base = store.get("cache_dir") or str(Path(tempfile.gettempdir()) / CACHE_NAME)
    return Path(base).expanduser() / node


def node_local_dir(cache_dir: str | None, node: str, name: str) -> Path:
    """A directory of this node's own beside its artifact entries (eviction passes it by:
    it is not an entry), so nodes that share a filesystem still write their own: a
    script's `requirements.txt` installs (`packages`), compiled tree models (`compiled`)."""
    return node_cache_dir({"cache_dir": cache_dir}, node) / name


def node_model(
    artifact: Mapping[str, Any] | None, shared_dir: Path, env: Mapping[str, str], node: str
) -> NodeModel:
    """Fetch (or find in the node's cache) the instance's model directory on `node`.
    Raises `ArtifactError` (or OSError) with what to fix when it cannot."""
    if artifact is None:
        if not shared_dir.is_dir():
            raise FileNotFoundError(
                f"the model directory {shared_dir} is not on node {node}: put the state "
                "directory on a path every node shares, or the artifacts in S3"
            )
        return NodeModel(shared_dir, {"SM_MODEL_DIR": str(shared_dir)})
    store = artifact["store"]
    cache = node_cache_dir(store, node)
    # A multi-model instance fetches the models it loads itself: into this node's cache,
    # bounded by the same budget.
    extra = {}
    if INSTANCE_CACHE_ENV in env:
        extra[INSTANCE_CACHE_ENV] = str(cache)
        if store.get("cache_bytes"):
            extra[INSTANCE_CACHE_BYTES_ENV] = str(int(store["cache_bytes"]))
    url, source = artifact.get("model_data_url"), artifact.get("model_data_source")
    if not url and not source:
        empty = cache / "empty-model"
        empty.mkdir(parents=True, exist_ok=True)
        # Its models arrive later, in the instance: the cache is bounded when it starts.
        note = _bound(store, cache)
        return NodeModel(empty, {"SM_MODEL_DIR": str(empty), **extra}, note.lstrip("\n"))
    artifacts = _store(store, cache)
    started = time.monotonic()
    model_dir, worked, held = _fetch_leased(artifacts, cache, url, source)
    where = url or (source or {}).get("S3Uri")
    how = "fetched" if worked else "found in the node's cache"
    note = (
        f"modelhost: model {where} {how} on node {node} in "
        f"{time.monotonic() - started:.2f} s: {model_dir}"
    )
    # After the lease: the entry this instance is about to use is never evicted.
    note += _bound(store, cache)
    return NodeModel(model_dir, {"SM_MODEL_DIR": str(model_dir), **extra}, note, held)


def _bound(store: Mapping[str, Any], cache: Path) -> str:
    """Evict what the node cache's budget (`ray_node_cache_bytes`) needs; a line for the
    instance log saying so, or empty."""
    budget = store.get("cache_bytes")
    if budget is None:
        return ""
    try:
        line = bound(cache, int(budget)).line(cache)
    except OSError as exc:  # the model is there: a failed eviction must not fail the start
        line = f"artifact cache {cache}: eviction failed: {exc}"
        log.warning("%s", line)
    return f"\nmodelhost: {line}" if line else ""


def bound_this_node(store: Mapping[str, Any]) -> str:
    """The periodic eviction pass of the node this runs on (a Ray task placed there by
    `bound_node_caches`); what it evicted, as a log line, or empty."""
    import ray

    return bound_node(store, ray.util.get_node_ip_address())


def bound_node(store: Mapping[str, Any], node: str) -> str:
    """Evict what `node`'s caches' budgets need (its artifact cache, and the node-local
    compiled forms and script packages; nothing for a cache not there yet); lines saying
    what they evicted, or empty."""
    cache = node_cache_dir(store, node)
    budgets = [(cache, store.get("cache_bytes"))]
    for name in ("compiled", "packages"):
        local = node_local_dir(store.get("cache_dir"), node, name)
        budgets.append((local, store.get(f"{name}_cache_bytes")))
    lines = []
    for root, budget in budgets:
        if not root.is_dir() or budget is None:
            continue
        try:
            done = bound(root, int(budget), warn=False)
        except OSError as exc:
            lines.append(f"cache {root}: eviction failed: {exc}")
            continue
        if done.evicted:
            lines.append(done.line(root))
    return "\n".join(lines)


def bound_node_caches(
    ray_api: Any,
    store: Mapping[str, Any],
    timeout_s: float = 60.0,
    pin: Callable[[str], Any] | None = None,
) -> list[str]:
    """The periodic eviction pass on every live node of the cluster: one task pinned to
    each (`pin`: a node id's scheduling strategy, Ray's hard node affinity by default; no
    CPU asked: it must run beside busy instances). Blocks up to `timeout_s`; returns the
    nodes' log lines (nodes that did not answer in time are skipped)."""
    if pin is None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        def pin(node_id: str) -> Any:
            return NodeAffinitySchedulingStrategy(node_id, soft=False)

    task = ray_api.remote(bound_this_node)
    refs = [
        task.options(num_cpus=0, scheduling_strategy=pin(row["NodeID"])).remote(dict(store))
        for row in ray_api.nodes()
        if row.get("Alive")
    ]
    if not refs:
        return []
    ready, _ = ray_api.wait(refs, num_returns=len(refs), timeout=timeout_s)
    lines = []
    for ref in ready:
        try:
            lines.append(str(ray_api.get(ref)))
        except Exception as exc:  # a node that died meanwhile: the next pass tries again
            lines.append(f"artifact cache eviction on a node failed: {exc}")
    return [line for line in lines if line]


def node_argv(argv: list[str], placeholder: Path, model_dir: Path) -> list[str]:
    """The instance's argv on this node: a word under the gateway's placeholder model
    directory (the program of a `command:` server, shipped in its artifact) points into
    the node's copy instead, and must be an executable file there (else OSError saying so)."""
    resolved = []
    for word in argv:
        path = Path(word)
        if path.is_absolute() and path != placeholder and path.is_relative_to(placeholder):
            path = model_dir / path.relative_to(placeholder)
            if not path.is_file():
                raise FileNotFoundError(f"{path.name}: not in the model's artifact ({path})")
            if not os.access(path, os.X_OK):
                raise PermissionError(f"{path} is not executable (chmod +x it in the artifact)")
            word = str(path)
        resolved.append(word)
    return resolved


def _fetch_leased(
    artifacts: Any, cache: Path, url: str | None, source: Mapping[str, Any] | None
) -> tuple[Path, bool, Lease | None]:
    """Fetch the model and lease its cache entry (none for a directory used in place). An
    entry evicted between the fetch and the lease is fetched again."""
    got = fetch_leased(
        cache,
        lambda: artifacts.counted(
            lambda: artifacts.fetch(url) if url else artifacts.fetch_source(source or {})
        ),
        _LEASE_ATTEMPTS,
        "raise ray_node_cache_bytes",
    )
    return got.path, got.fetched, got.lease


def _store(store: Mapping[str, Any], cache: Path) -> Any:
    # Imported here: an actor whose launch has no artifact section never needs it.
    from modelhost.store.artifacts import ArtifactStore
    from modelhost.store.unpack import UnpackLimits

    keys = store.get("s3_credentials")
    return ArtifactStore.from_values(
        cache,
        s3_endpoint_url=store.get("s3_endpoint_url"),
        s3_region=store.get("s3_region"),
        limits=UnpackLimits(
            int(store["max_unpacked_bytes"]), float(store["max_ratio"]), int(store["max_members"])
        ),
        s3_credentials=(str(keys[0]), str(keys[1])) if keys else None,
    )
