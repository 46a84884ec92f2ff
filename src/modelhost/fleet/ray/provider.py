"""The Ray instance provider: each instance is an actor placed on a node of a Ray cluster.

`start` is immediate, as the protocol wants: it picks a node (`placement.choose_node`),
creates the actor with the instance's resource request and asks it to start the process.
The address becomes known when the actor answers; until then the instance has port 0 and
its pings fail, so the fleet's usual wait for /ping covers Ray's scheduling too. Each
running instance has one outstanding `wait` call on its actor: it returns the process's
exit status, or fails when the actor, its worker or its node dies (Ray's own signal),
and `exit_code` turns either into the status the fleet replaces instances on.

An endpoint's instances (`LaunchSpec.detached`) are detached actors named after their
endpoint, variant and instance id, in the Ray namespace of the metadata store: they keep
serving when the gateway dies. The gateway that leads next `adopt`s the ones that still
run the variant's model and config; a gateway that stops leading `release`s them.

An instance on a node that cannot write the gateway's log file ships its output: each
`exit_code` call (the fleet's health checks) pulls a batch into that file, and an exit
is reported once the last lines are in (fleet/ray/logship.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelhost.fleet.instance import Instance, LaunchSpec
from modelhost.fleet.ray.actor import InstanceActor
from modelhost.fleet.ray.artifacts import bound_node_caches, launch_artifact
from modelhost.fleet.ray.connect import connect, is_loopback
from modelhost.fleet.ray.logship import DRAIN_S, SHIP_BYTES, LogFollower
from modelhost.fleet.ray.placement import (
    Candidate,
    ResourceRequest,
    actor_name,
    actor_prefix,
    choose_adopted,
    choose_node,
    node_views,
    parse_actor_name,
    resource_request,
)
from modelhost.resources import gpus
from modelhost.resources.status import InstanceStatus

log = logging.getLogger("modelhost.fleet")

# A node where one of our actors died is avoided this long (Ray may not have noticed yet).
SUSPECT_S = 60.0
# Threads of an actor: `wait` blocks in one while `start`, `describe` and `stop` run in
# others (a gateway that died may leave its `wait` running for up to WAIT_S).
ACTOR_THREADS = 8
# How long one `wait` call blocks before the gateway asks again.
WAIT_S = 30.0
# How long an actor found by its name has to describe itself before it is passed over.
DESCRIBE_TIMEOUT_S = 10.0


@dataclass
class _Placed:
    """The gateway's record of one Ray-placed instance."""

    actor: Any
    started: Any  # ObjectRef of InstanceActor.start
    request: ResourceRequest
    node_id: str | None
    watch: Any = None  # ObjectRef of InstanceActor.wait, once started
    code: int | None = None
    variant: tuple[str, str] = field(default=("", ""))
    detached: bool = False
    logs: LogFollower | None = None  # its output is shipped (the node cannot write the file)


class RayProvider:
    """Places instances on the nodes of the Ray cluster at `address` (see the module
    docstring). `resource_scale` multiplies every request (docs/scale-out.md); `namespace`
    is the Ray namespace its named actors live in (`placement.ray_namespace`);
    `node_cache_dir`, `log_mode` and `log_buffer_bytes` are the `ray_node_cache_dir`,
    `ray_instance_logs` and `ray_log_buffer_bytes` settings."""

    outlives_gateway = True

    # The nodes fetch artifacts themselves (fleet/ray/artifacts.py): `FleetManager` then
    # leaves them out of the gateway's artifact cache.
    fetches_on_node = True

    def __init__(
        self,
        address: str | None,
        resource_scale: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        ray_api: Any = None,
        namespace: str = "modelhost",
        node_cache_dir: str | None = None,
        log_mode: str = "auto",
        log_buffer_bytes: int = 8 * 2**20,
    ) -> None:
        """`ray_api` replaces the `ray` module (tests pass a fake; it is not initialized)."""
        self._ray = ray_api if ray_api is not None else connect(address, namespace)
        self._node_options = {
            "node_cache_dir": node_cache_dir,
            "log_mode": log_mode,
            "log_buffer_bytes": log_buffer_bytes,
        }
        self._actor_cls: Any = self._ray.remote(InstanceActor)
        self._scale = resource_scale
        self._clock = clock
        self._placed: dict[str, _Placed] = {}
        self._suspect: dict[str, float] = {}

    def start(self, spec: LaunchSpec) -> Instance:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        instance_id = f"i-{uuid.uuid4().hex[:12]}"
        request = resource_request(spec.env.get(gpus.INSTANCE_TYPE_ENV), self._scale)
        variant = (spec.endpoint_name, spec.variant_name)
        node_id = self._choose(variant, request)
        strategy: Any = NodeAffinitySchedulingStrategy(node_id, soft=True) if node_id else "SPREAD"
        options: dict[str, Any] = {
            "num_cpus": request.num_cpus,
            "memory": request.memory_bytes or None,
            "scheduling_strategy": strategy,
            "max_concurrency": ACTOR_THREADS,
            "max_restarts": 0,
        }
        if spec.detached:
            # It outlives this gateway: the next leader finds it by its name.
            options["name"] = actor_name(*variant, instance_id)
            options["lifetime"] = "detached"
        actor = self._actor_cls.options(**options).remote()
        log_path = spec.log_dir / f"{instance_id}.log"
        spec.log_dir.mkdir(parents=True, exist_ok=True)
        # If Ray cannot place it, the startup timeout's reason quotes this line; a node
        # that reads it back writes the instance's output into this file itself.
        head = (
            f"modelhost: instance {instance_id} asked Ray for {request.num_cpus:g} CPU and "
            f"{request.memory_bytes / 2**30:.2f} GiB of memory (node {node_id or 'any'})\n"
        )
        with contextlib.suppress(OSError), open(log_path, "a") as f:
            f.write(head)
        env = {
            **spec.env,
            "SM_MODEL_DIR": str(spec.model_dir),
            "MH_INSTANCE_ID": instance_id,
            "MH_INSTANCE_ENDPOINT_NAME": spec.endpoint_name,
            "MH_INSTANCE_VARIANT_NAME": spec.variant_name,
        }
        launch = {
            "argv": spec.argv,
            "env": env,
            "model_dir": str(spec.model_dir),
            "log_path": str(log_path),
            "builtin": spec.builtin,
            # Where the node fetches the model from (None: spec.model_dir, a shared path).
            "artifact": launch_artifact(spec),
            "instance_id": instance_id,
            "fingerprint": spec.fingerprint,
            "log_head": head,
            **self._node_options,
        }
        self._placed[instance_id] = _Placed(
            actor,
            actor.start.remote(launch),
            request,
            node_id,
            variant=variant,
            detached=spec.detached,
        )
        # Port 0 until the actor says where the process listens: pings fail until then.
        return Instance(instance_id=instance_id, spec=spec, port=0, pid=0, log_path=log_path)

    def _choose(self, variant: tuple[str, str], request: ResourceRequest) -> str | None:
        held: dict[str, ResourceRequest] = {}
        placed: Counter[str] = Counter()
        for p in self._placed.values():
            if p.node_id is None or p.code is not None:
                continue
            old = held.get(p.node_id, ResourceRequest(0.0, 0))
            held[p.node_id] = ResourceRequest(
                old.num_cpus + p.request.num_cpus, old.memory_bytes + p.request.memory_bytes
            )
            if p.variant == variant:
                placed[p.node_id] += 1
        now = self._clock()
        avoid = {n for n, since in self._suspect.items() if now - since < SUSPECT_S}
        return choose_node(node_views(self._ray.nodes(), held), placed, request, avoid)

    def node_of(self, instance: Instance) -> str | None:
        """The Ray node id the instance runs on (None while it is being placed)."""
        placed = self._placed.get(instance.instance_id)
        return placed.node_id if placed is not None and placed.watch is not None else None

    def exit_code(self, instance: Instance) -> int | None:
        placed = self._placed.get(instance.instance_id)
        if placed is None:
            return -1
        if placed.code is not None:
            return placed.code
        if placed.watch is None:
            ready, _ = self._ray.wait([placed.started], timeout=0)
            if not ready:
                return None  # Ray is still placing it
            try:
                info = self._ray.get(placed.started)
            except Exception as exc:
                return self._failed(instance, placed, f"the Ray actor did not start it: {exc}")
            if "error" in info:  # e.g. the node could not fetch the artifact
                return self._failed(instance, placed, str(info["error"]))
            instance.listen_at(info["host"], info["port"])
            # The pid means something here (CPU and memory sampling reads /proc) only when
            # the node is this machine: a loopback address, as on the local cluster.
            instance.pid = info["pid"] if is_loopback(info["host"]) else 0
            placed.node_id = info["node_id"]
            placed.watch = placed.actor.wait.remote(WAIT_S)
            if info.get("ships_log"):
                placed.logs = LogFollower(str(info["host"]))
            log.info("instance %s runs on Ray node %s", instance.instance_id, instance.host)
            return None
        ready, _ = self._ray.wait([placed.watch], timeout=0)
        if not ready:
            if placed.logs is not None:
                placed.logs.step(self._ray, placed.actor, instance.log_path)
            return None
        try:
            code = self._ray.get(placed.watch)
        except Exception as exc:
            return self._failed(instance, placed, f"its Ray actor or node died: {exc}")
        if code is None:  # still running after WAIT_S: wait again
            placed.watch = placed.actor.wait.remote(WAIT_S)
            return None
        logs = placed.logs
        if logs is not None and not logs.drained(
            self._ray, placed.actor, instance.log_path, self._clock()
        ):
            return None  # its last lines (a traceback, say) first: the fleet quotes them
        placed.code = int(code)
        return placed.code

    def _failed(self, instance: Instance, placed: _Placed, reason: str) -> int:
        """The actor is gone (or never started the process): status -1, the reason in the
        instance log (the fleet quotes its tail), the node avoided for a while."""
        log.warning("instance %s: %s", instance.instance_id, reason)
        with contextlib.suppress(OSError), open(instance.log_path, "a") as f:
            f.write(f"modelhost: {reason}\n")
        if placed.node_id is not None:
            self._suspect[placed.node_id] = self._clock()
        placed.code = -1
        return -1

    async def stop(self, instance: Instance, grace_s: float) -> None:
        instance.status = InstanceStatus.STOPPING
        placed = self._placed.pop(instance.instance_id, None)
        if placed is not None:
            if placed.code is None:
                # Ask the actor to stop the process; a dead actor answers with an error.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(placed.actor.stop.remote(grace_s), grace_s + 10.0)
            if placed.logs is not None:
                # Its last lines (how it shut down) before the actor goes.
                read = placed.actor.read_log.remote
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(
                        placed.logs.drain(lambda since: read(since, SHIP_BYTES), instance.log_path),
                        DRAIN_S,
                    )
            with contextlib.suppress(Exception):
                self._ray.kill(placed.actor, no_restart=True)
        instance.status = InstanceStatus.STOPPED

    async def release(self, instance: Instance, grace_s: float) -> None:
        """A detached instance that runs is forgotten here and keeps serving (the next
        leader adopts it); any other is stopped."""
        placed = self._placed.get(instance.instance_id)
        if placed is not None and placed.detached and placed.code is None:
            del self._placed[instance.instance_id]
            return
        await self.stop(instance, grace_s)

    async def adopt(self, spec: LaunchSpec, count: int) -> list[Instance]:
        """The variant's detached actors that no gateway tracks here (see the protocol):
        each describes itself; `placement.choose_adopted` picks the ones to keep and the
        stale ones are stopped."""
        if not spec.detached:
            return []
        prefix = actor_prefix(spec.endpoint_name, spec.variant_name)
        names = await asyncio.to_thread(self._ray.util.list_named_actors)
        untracked = [
            n for n in names if n.startswith(prefix) and n[len(prefix) :] not in self._placed
        ]
        described = await asyncio.gather(*(self._describe(n) for n in untracked))
        found = {c.instance_id: (c, actor, info) for c, actor, info in filter(None, described)}
        keep, stale = choose_adopted([c for c, _, _ in found.values()], spec.fingerprint, count)
        for candidate in stale:
            log.info("stopping stale instance %s of %s", candidate.instance_id, prefix)
            await self._end(found[candidate.instance_id][1])
        return [self._adopted(spec, *found[c.instance_id]) for c in keep]

    async def sweep(self, claimed: Callable[[str], bool]) -> int:
        """Stop the named actors of this namespace that no gateway tracks here and whose
        endpoint is not `claimed` (checked again just before each stop: a transition may
        have adopted it meanwhile)."""
        names = await asyncio.to_thread(self._ray.util.list_named_actors)
        ended = 0
        for name in names:
            parsed = parse_actor_name(name)
            if parsed is None or parsed[2] in self._placed or claimed(parsed[0]):
                continue
            with contextlib.suppress(Exception):
                actor = await asyncio.to_thread(self._ray.get_actor, name)
                if parsed[2] in self._placed or claimed(parsed[0]):
                    continue
                log.info(
                    "stopping instance %s of %s/%s: no gateway serves it",
                    parsed[2],
                    parsed[0],
                    parsed[1],
                )
                await self._end(actor)
                ended += 1
        return ended

    async def _end(self, actor: Any) -> None:
        """Stop an actor's process (briefly), then the actor."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(actor.stop.remote(1.0), DESCRIBE_TIMEOUT_S)
        with contextlib.suppress(Exception):
            self._ray.kill(actor, no_restart=True)

    async def _describe(self, name: str) -> tuple[Candidate, Any, dict[str, Any]] | None:
        """The named actor and what it says of itself; None if it is gone or silent (a
        dying node's, say: Ray ends it soon)."""
        try:
            actor = await asyncio.to_thread(self._ray.get_actor, name)
            info = await asyncio.wait_for(actor.describe.remote(), DESCRIBE_TIMEOUT_S)
        except Exception as exc:
            log.info("Ray actor %s did not describe itself: %s", name, exc)
            return None
        if not info or "instance_id" not in info:
            return None  # created, but its process never started (the sweep ends it)
        candidate = Candidate(
            instance_id=str(info["instance_id"]),
            node_id=str(info["node_id"]),
            fingerprint=str(info["fingerprint"]),
            running=bool(info["running"]),
            started_s=float(info["started_s"]),
        )
        return candidate, actor, info

    def _adopted(
        self, spec: LaunchSpec, candidate: Candidate, actor: Any, info: dict[str, Any]
    ) -> Instance:
        """Track an adopted actor as if this gateway had started it."""
        # A shipped log continues in this gateway's own file, from where the last
        # gateway's reads stopped.
        ships = bool(info.get("ships_log"))
        log_path = spec.log_dir / f"{candidate.instance_id}.log" if ships else None
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
        instance = Instance(
            instance_id=candidate.instance_id,
            spec=spec,
            port=int(info["port"]),
            pid=int(info["pid"]) if is_loopback(str(info["host"])) else 0,
            log_path=log_path or Path(info["log_path"]),
            started_s=candidate.started_s,
            host=str(info["host"]),
        )
        request = resource_request(spec.env.get(gpus.INSTANCE_TYPE_ENV), self._scale)
        self._placed[candidate.instance_id] = _Placed(
            actor,
            None,
            request,
            candidate.node_id,
            watch=actor.wait.remote(WAIT_S),
            variant=(spec.endpoint_name, spec.variant_name),
            detached=True,
            logs=LogFollower(instance.host) if ships else None,
        )
        log.info("adopted instance %s on Ray node %s", candidate.instance_id, instance.host)
        return instance

    def bound_caches(self, store: dict[str, Any]) -> list[str]:
        """The periodic eviction pass on every node's artifact cache (blocking)."""
        return bound_node_caches(self._ray, store)

    def kill_all(self) -> None:
        """Last-resort cleanup: kill every actor (its instance exits with it)."""
        placed, self._placed = list(self._placed.values()), {}
        with contextlib.suppress(Exception):
            self._ray.get([p.actor.stop.remote(0.0) for p in placed], timeout=5)
        for p in placed:
            with contextlib.suppress(Exception):
                self._ray.kill(p.actor, no_restart=True)
