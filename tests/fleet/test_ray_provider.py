"""The Ray provider's bookkeeping over a fake `ray` API: placement per variant, the address
learnt when the actor answers, exit statuses, a dead actor's node avoided; detached
instances released by one gateway and adopted by the next."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from modelhost.fleet.instance import LaunchSpec
from modelhost.fleet.ray.logship import SHIP_BYTES, LogBatch, LogBuffer
from modelhost.fleet.ray.placement import actor_name
from modelhost.fleet.ray.provider import RayProvider
from modelhost.resources.status import InstanceStatus

# The provider builds Ray's own NodeAffinitySchedulingStrategy objects.
pytest.importorskip("ray")

GIB = 1024**3


def node_id(i: int) -> str:
    """A node id in Ray's form (56 hex digits)."""
    return f"{i:02x}" * 28


@dataclass
class Ref:
    """A fake ObjectRef: pending until `value` or `error` is set."""

    value: Any = None
    error: Exception | None = None
    ready: bool = False

    def resolve(self, value: Any = None, error: Exception | None = None) -> None:
        self.value, self.error, self.ready = value, error, True

    def __await__(self) -> Any:
        return self._answer().__await__()

    async def _answer(self) -> Any:
        return self.value


@dataclass
class Method:
    calls: list[Ref] = field(default_factory=list)
    args: list[tuple[Any, ...]] = field(default_factory=list)

    def remote(self, *args: Any) -> Ref:
        ref = Ref()
        self.calls.append(ref)
        self.args.append(args)
        return ref


class Describe(Method):
    """`describe` answers at once with what the actor's `start` answered."""

    def __init__(self, actor: Actor) -> None:
        super().__init__()
        self.actor = actor

    def remote(self, *args: Any) -> Ref:
        ref = super().remote(*args)
        ref.resolve({**self.actor.info, "running": bool(self.actor.info)})
        return ref


class Actor:
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        self.start, self.wait, self.stop, self.killed = Method(), Method(), Method(), False
        self.read_log = Method()
        self.describe = Describe(self)
        self.info: dict[str, Any] = {}

    def started(
        self, instance_id: str, node: int, fingerprint: str = "f1", ships_log: bool = False
    ) -> dict[str, Any]:
        """Answer the `start` call as the real actor does; `describe` answers the same."""
        self.info = {
            "host": f"127.0.1.{node}", "port": 5000 + node, "pid": 100 + node,
            "node_id": node_id(node), "instance_id": instance_id, "fingerprint": fingerprint,
            "log_path": f"/tmp/{instance_id}.log", "started_s": 1.0, "running": True,
            "ships_log": ships_log,
        }  # fmt: skip
        self.start.calls[0].resolve(self.info)
        return self.info


class ActorClass:
    """What `ray.remote(InstanceActor)` returns: `.options(...).remote()` makes an actor."""

    def __init__(self, actors: list[Actor]) -> None:
        self.actors = actors
        self._options: dict[str, Any] = {}

    def options(self, **options: Any) -> ActorClass:
        self._options = options
        return self

    def remote(self) -> Actor:
        actor = Actor(self._options)
        self.actors.append(actor)
        return actor


class FakeRay:
    """The part of the `ray` module the provider uses."""

    def __init__(self, nodes: int) -> None:
        self.rows = [
            {"NodeID": node_id(i), "NodeManagerAddress": f"127.0.1.{i}", "Alive": True,
             "Resources": {"CPU": 1.0, "memory": 2.0 * GIB}}
            for i in range(1, nodes + 1)
        ]  # fmt: skip
        self.actors: list[Actor] = []
        self.util = self

    def list_named_actors(self) -> list[str]:
        return [a.options["name"] for a in self.actors if "name" in a.options and not a.killed]

    def get_actor(self, name: str) -> Actor:
        return next(a for a in self.actors if a.options.get("name") == name and not a.killed)

    def remote(self, cls: type) -> ActorClass:
        return ActorClass(self.actors)

    def nodes(self) -> list[dict[str, Any]]:
        return self.rows

    def wait(self, refs: list[Ref], timeout: float) -> tuple[list[Ref], list[Ref]]:
        return [r for r in refs if r.ready], [r for r in refs if not r.ready]

    def get(self, ref: Ref | list[Ref], timeout: float | None = None) -> Any:
        if isinstance(ref, list):
            return [self.get(r) for r in ref]
        if ref.error is not None:
            raise ref.error
        return ref.value

    def kill(self, actor: Actor, no_restart: bool) -> None:
        actor.killed = True


def _spec(
    tmp_path: Path, variant: str = "AllTraffic", detached: bool = False, fingerprint: str = "f1"
) -> LaunchSpec:
    return LaunchSpec(
        endpoint_name="ep",
        variant_name=variant,
        model_name="m",
        argv=["python", "-m", "modelhost.container"],
        env={"MH_INSTANCE_TYPE": "ml.m5.large"},
        model_dir=tmp_path,
        log_dir=tmp_path / "logs",
        detached=detached,
        fingerprint=fingerprint,
    )


def _node(actor: Actor) -> str:
    return str(actor.options["scheduling_strategy"].node_id)


def test_instances_spread_and_learn_their_address(tmp_path: Path) -> None:
    ray = FakeRay(nodes=3)
    provider = RayProvider(None, resource_scale=0.1, ray_api=ray)
    instances = [provider.start(_spec(tmp_path)) for _ in range(3)]
    assert sorted(_node(a) for a in ray.actors) == [node_id(1), node_id(2), node_id(3)]
    assert ray.actors[0].options["num_cpus"] == 0.2
    assert ray.actors[0].options["memory"] == int(0.8 * GIB)
    first, actor = instances[0], ray.actors[0]
    # Until the actor answers: no address, still starting.
    assert provider.exit_code(first) is None and first.port == 0
    where = {"host": "127.0.1.1", "port": 5000, "pid": 42, "node_id": node_id(1)}
    actor.start.calls[0].resolve(where)
    assert provider.exit_code(first) is None
    assert (first.host, first.port, first.pid) == ("127.0.1.1", 5000, 42)
    assert first.address == ("127.0.1.1", 5000)  # what the gateway connects to
    # The process exits: its status. Its node wrote the log file itself: nothing pulled.
    actor.wait.calls[0].resolve(3)
    assert provider.exit_code(first) == 3
    assert actor.read_log.calls == []
    # Another variant spreads on its own: its first instance may go anywhere.
    provider.start(_spec(tmp_path, "Other"))
    assert len(ray.actors) == 4


def test_a_dead_actor_is_status_minus_one_and_its_node_is_avoided(tmp_path: Path) -> None:
    ray = FakeRay(nodes=3)
    provider = RayProvider(None, resource_scale=0.1, ray_api=ray)
    a, b = provider.start(_spec(tmp_path)), provider.start(_spec(tmp_path))
    for inst, actor in ((a, ray.actors[0]), (b, ray.actors[1])):
        where = {"host": "127.0.1.9", "port": 1, "pid": 1, "node_id": _node(actor)}
        actor.start.calls[0].resolve(where)
        assert provider.exit_code(inst) is None
    lost = _node(ray.actors[1])
    ray.actors[1].wait.calls[0].resolve(error=RuntimeError("the actor's node died"))
    assert provider.exit_code(b) == -1
    assert "node died" in b.log_path.read_text()
    asyncio.run(provider.stop(b, grace_s=0.1))
    assert ray.actors[1].killed and b.status == InstanceStatus.STOPPED
    # The replacement goes to the third node, not back to the one that died (which Ray
    # still lists as alive).
    provider.start(_spec(tmp_path))
    assert _node(ray.actors[2]) not in (lost, _node(ray.actors[0]))


def test_an_actor_that_cannot_start_the_process_fails_the_instance(tmp_path: Path) -> None:
    ray = FakeRay(nodes=1)
    provider = RayProvider(None, ray_api=ray)
    inst = provider.start(_spec(tmp_path))
    ray.actors[0].start.calls[0].resolve(error=FileNotFoundError("no model directory"))
    assert provider.exit_code(inst) == -1
    assert "no model directory" in inst.log_path.read_text()
    provider.kill_all()
    assert ray.actors[0].killed


def test_endpoint_instances_are_detached_named_actors(tmp_path: Path) -> None:
    ray = FakeRay(nodes=1)
    provider = RayProvider(None, ray_api=ray)
    inst = provider.start(_spec(tmp_path, detached=True))
    assert ray.actors[0].options["lifetime"] == "detached"
    assert ray.actors[0].options["name"] == actor_name("ep", "AllTraffic", inst.instance_id)
    provider.start(_spec(tmp_path))  # a transform job's: dies with its gateway
    assert "name" not in ray.actors[1].options and "lifetime" not in ray.actors[1].options


def test_a_released_instance_keeps_running_and_the_next_gateway_adopts_it(
    tmp_path: Path,
) -> None:
    ray = FakeRay(nodes=3)
    old = RayProvider(None, resource_scale=0.1, ray_api=ray)
    spec = _spec(tmp_path, detached=True)
    instances = [old.start(spec) for _ in range(3)]
    # Another gateway died before its actor started the process.
    RayProvider(None, ray_api=ray).start(spec)
    for i, (inst, actor) in enumerate(zip(instances, ray.actors[:3], strict=True)):
        actor.started(inst.instance_id, i + 1, fingerprint="f0" if i == 2 else "f1")
        assert old.exit_code(inst) is None
    # What an old gateway tracks is never adopted by it again (a rollout's blue fleet).
    assert asyncio.run(old.adopt(spec, 3)) == []
    for inst in instances:
        asyncio.run(old.release(inst, grace_s=1.0))
    old.kill_all()
    assert not any(a.killed or a.stop.calls for a in ray.actors)
    # The next leader: the two running the current model are adopted where they listen,
    # the stale one (another fingerprint) is stopped.
    new = RayProvider(None, resource_scale=0.1, ray_api=ray)
    adopted = asyncio.run(new.adopt(spec, 3))
    assert sorted(i.instance_id for i in adopted) == sorted(i.instance_id for i in instances[:2])
    assert sorted((i.host, i.port) for i in adopted) == [("127.0.1.1", 5001), ("127.0.1.2", 5002)]
    assert ray.actors[2].killed and not ray.actors[0].killed
    assert all(new.exit_code(i) is None for i in adopted)
    assert not ray.actors[3].killed  # never started: passed over (the sweep ends it)
    # Adopted instances count for placement: the next goes to the third node.
    new.start(spec)
    assert _node(ray.actors[4]) == node_id(3)
    # Not detached: nothing to adopt. Stopping an adopted one kills its actor.
    assert asyncio.run(new.adopt(_spec(tmp_path, "Other"), 3)) == []
    asyncio.run(new.stop(adopted[0], grace_s=0.1))
    assert ray.actors[0].killed or ray.actors[1].killed


def test_a_wait_that_times_out_is_asked_again(tmp_path: Path) -> None:
    ray = FakeRay(nodes=1)
    provider = RayProvider(None, ray_api=ray)
    inst = provider.start(_spec(tmp_path, detached=True))
    actor = ray.actors[0]
    actor.started(inst.instance_id, 1)
    assert provider.exit_code(inst) is None
    actor.wait.calls[0].resolve(None)  # still running after WAIT_S
    assert provider.exit_code(inst) is None and len(actor.wait.calls) == 2
    actor.wait.calls[1].resolve(0)
    assert provider.exit_code(inst) == 0


def test_a_sweep_stops_untracked_instances_of_unclaimed_endpoints_only(tmp_path: Path) -> None:
    ray = FakeRay(nodes=2)
    old = RayProvider(None, ray_api=ray)
    left = old.start(_spec(tmp_path, detached=True))  # a dead leader's: nobody tracks it
    busy = old.start(
        LaunchSpec(**{**vars(_spec(tmp_path, detached=True)), "endpoint_name": "busy"})
    )
    for inst, actor, node in ((left, ray.actors[0], 1), (busy, ray.actors[1], 2)):
        actor.started(inst.instance_id, node)
    new = RayProvider(None, ray_api=ray)
    mine = new.start(_spec(tmp_path, detached=True))  # tracked by the new leader
    assert asyncio.run(new.sweep(lambda endpoint: endpoint == "busy")) == 1
    assert ray.actors[0].killed  # ep's left-behind instance
    assert not ray.actors[1].killed  # "busy" is in a transition: perhaps being adopted
    assert not ray.actors[2].killed and new.exit_code(mine) is None


def test_a_shipped_log_is_pulled_into_the_gateways_file_and_an_exit_waits_for_it(
    tmp_path: Path,
) -> None:
    ray = FakeRay(nodes=1)
    provider = RayProvider(None, ray_api=ray, node_cache_dir="/node/cache", log_mode="ship")
    inst = provider.start(_spec(tmp_path))
    actor = ray.actors[0]
    launch = actor.start.args[0][0]
    # The node is told how to decide, and reads back the line the gateway wrote.
    assert (launch["log_mode"], launch["node_cache_dir"]) == ("ship", "/node/cache")
    assert inst.log_path.read_text() == launch["log_head"]
    assert inst.instance_id in launch["log_head"]
    actor.started(inst.instance_id, 1, ships_log=True)
    assert provider.exit_code(inst) is None  # learns the address
    assert provider.exit_code(inst) is None and actor.read_log.args == [(None, SHIP_BYTES)]
    actor.read_log.calls[0].resolve(LogBatch(0, b"serving\n"))
    assert provider.exit_code(inst) is None and actor.read_log.args[1] == (8, SHIP_BYTES)
    assert inst.log_path.read_text().endswith("serving\n")
    # It crashes: the exit is held back until a pull asked after it finds nothing more.
    actor.wait.calls[0].resolve(1)
    assert provider.exit_code(inst) is None
    actor.read_log.calls[1].resolve(LogBatch(8, b"Traceback ...\nValueError: bad\n"))
    assert provider.exit_code(inst) is None
    actor.read_log.calls[2].resolve(LogBatch(38, b"", closed=True))
    assert provider.exit_code(inst) == 1
    assert inst.log_path.read_text().endswith("serving\nTraceback ...\nValueError: bad\n")


def test_an_adopted_shipping_instance_continues_in_this_gateways_file(tmp_path: Path) -> None:
    ray = FakeRay(nodes=1)
    old = RayProvider(None, ray_api=ray)
    spec = _spec(tmp_path, detached=True)
    inst = old.start(spec)
    ray.actors[0].started(inst.instance_id, 1, ships_log=True)
    assert old.exit_code(inst) is None
    asyncio.run(old.release(inst, grace_s=1.0))
    new_spec = LaunchSpec(**{**vars(spec), "log_dir": tmp_path / "other-home" / "logs"})
    new = RayProvider(None, ray_api=ray)
    (adopted,) = asyncio.run(new.adopt(new_spec, 1))
    # Not the old gateway's path the actor reported: this gateway's own file.
    assert adopted.log_path == new_spec.log_dir / f"{inst.instance_id}.log"
    assert new.exit_code(adopted) is None
    assert ray.actors[0].read_log.args[-1] == (None, SHIP_BYTES)  # where the last reader stopped
    ray.actors[0].read_log.calls[-1].resolve(LogBatch(120, b"still serving\n"))
    new.exit_code(adopted)
    assert adopted.log_path.read_text() == "still serving\n"


class ReadLog(Method):
    """`read_log` answering at once from a real buffer, as the node does."""

    def __init__(self, buffer: LogBuffer) -> None:
        super().__init__()
        self.buffer = buffer

    def remote(self, *args: Any) -> Ref:
        ref = super().remote(*args)
        ref.resolve(self.buffer.read(*args))
        return ref


def test_a_stopping_instances_last_lines_are_pulled_before_its_actor_goes(
    tmp_path: Path,
) -> None:
    ray = FakeRay(nodes=1)
    provider = RayProvider(None, ray_api=ray, log_mode="ship")
    inst = provider.start(_spec(tmp_path))
    actor = ray.actors[0]
    actor.read_log = ReadLog(LogBuffer(cap_bytes=1 << 20))
    actor.started(inst.instance_id, 1, ships_log=True)
    assert provider.exit_code(inst) is None
    actor.read_log.buffer.append(b"serving\n")
    assert provider.exit_code(inst) is None
    actor.read_log.buffer.append(b"SIGTERM: shutting down\n")
    asyncio.run(provider.stop(inst, grace_s=0.1))
    assert actor.killed
    assert inst.log_path.read_text().endswith("serving\nSIGTERM: shutting down\n")
