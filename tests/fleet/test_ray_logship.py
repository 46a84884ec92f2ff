"""Instance logs and packages of a Ray node the gateway does not share a path with, without
Ray: the node's bounded buffer (`LogBuffer`), a real process's output pumped into it, the
gateway's cursor writing what it pulls into the instance's log file, and the node-local
package cache in the instance's environment."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelhost.fleet.ray.actor import instance_env, ships_log, spawn_instance
from modelhost.fleet.ray.artifacts import NodeModel, node_cache_dir
from modelhost.fleet.ray.logship import DRAIN_S, LogBatch, LogBuffer, LogFollower, sees_gateway_log


def test_a_read_continues_where_the_reader_stopped_and_frees_what_it_has() -> None:
    buf = LogBuffer(cap_bytes=1024)
    buf.append(b"one\ntwo\n")
    first = buf.read(0)
    assert (first.start, first.data, first.dropped_bytes, first.more) == (
        0,
        b"one\ntwo\n",
        0,
        False,
    )
    buf.append(b"three\n")
    # A gateway that adopts the instance does not know the offset: it continues at the
    # last one a reader named (here 0: the batch above was never acknowledged).
    assert buf.read(None).data == b"one\ntwo\nthree\n"
    assert buf.read(first.end).data == b"three\n"
    assert buf.read(None).data == b"three\n"  # acknowledged up to 8 now
    assert buf.read(14).data == b""


def test_a_read_is_bounded_and_says_more_is_waiting() -> None:
    buf = LogBuffer(cap_bytes=1024)
    buf.append(b"a" * 100)
    batch = buf.read(0, max_bytes=30)
    assert (len(batch.data), batch.more) == (30, True)
    rest = buf.read(batch.end, max_bytes=1000)
    assert (rest.start, len(rest.data), rest.more) == (30, 70, False)


def test_a_full_buffer_drops_whole_oldest_lines_and_the_reader_learns_how_many_bytes() -> None:
    buf = LogBuffer(cap_bytes=20)
    for i in range(10):
        buf.append(f"line {i}\n".encode())  # 7 bytes each
    batch = buf.read(0)
    # The last whole lines that fit in 20 bytes are kept, the rest dropped and counted.
    assert batch.data == b"line 8\nline 9\n"
    assert batch.dropped_bytes == 56
    assert batch.start == 56
    # Nothing is reported twice.
    buf.append(b"line 10\n")
    assert buf.read(batch.end).dropped_bytes == 0


def test_a_line_longer_than_the_buffer_is_dropped_whole() -> None:
    buf = LogBuffer(cap_bytes=8)
    buf.append(b"x" * 50)
    batch = buf.read(0)
    assert (batch.data, batch.dropped_bytes) == (b"", 50)


def test_a_process_output_is_pumped_and_the_buffer_closes_when_it_ends(tmp_path: Path) -> None:
    buf = LogBuffer(cap_bytes=1 << 20)
    model = NodeModel(tmp_path, {}, note="modelhost: model found on node n1")
    script = "import sys; print('hello from the instance'); sys.stderr.write('oops\\n')"
    proc = spawn_instance([sys.executable, "-c", script], {}, model, tmp_path / "gw.log", buf)
    assert proc.stdout is not None
    pump = buf.follow(proc.stdout)
    assert proc.wait(60) == 0
    pump.join(60)
    batch = buf.read(0)
    lines = batch.data.decode().splitlines()
    assert lines[0] == "modelhost: model found on node n1"
    assert sorted(lines[1:]) == ["hello from the instance", "oops"]
    assert batch.closed
    # With a buffer, the node never writes (or creates) the gateway's log file.
    assert not (tmp_path / "gw.log").exists()


def test_a_node_ships_only_when_it_does_not_see_the_gateways_log_file(tmp_path: Path) -> None:
    log_path = tmp_path / "logs" / "ep" / "v" / "i-1.log"
    head = "modelhost: instance i-1 asked Ray for 0.2 CPU\n"
    auto = {"log_mode": "auto", "log_head": head}
    assert ships_log(auto, log_path)  # not there: another machine
    log_path.parent.mkdir(parents=True)
    log_path.write_text("modelhost: instance i-2 asked Ray for 0.2 CPU\n")
    assert not sees_gateway_log(log_path, head)  # same path, someone else's file
    log_path.write_text(head + "more\n")
    assert sees_gateway_log(log_path, head) and not ships_log(auto, log_path)
    assert ships_log({"log_mode": "ship", "log_head": head}, log_path)
    assert not ships_log({}, log_path)  # a launch of a gateway that knows no shipping


def test_script_packages_and_compiled_models_stay_on_the_node(tmp_path: Path) -> None:
    launch = {
        "env": {
            "MH_INSTANCE_PACKAGES_DIR": "/gateway/home/packages",
            "MH_INSTANCE_COMPILE_CACHE_DIR": "/gateway/home/compiled",
            "A": "1",
        },
        "node_cache_dir": str(tmp_path / "node-caches"),
    }
    env = instance_env(launch, NodeModel(tmp_path, {"SM_MODEL_DIR": "/m"}), "10.0.0.7", 8080)
    node = node_cache_dir({"cache_dir": str(tmp_path / "node-caches")}, "10.0.0.7")
    assert env["MH_INSTANCE_PACKAGES_DIR"] == str(node / "packages")
    assert env["MH_INSTANCE_COMPILE_CACHE_DIR"] == str(node / "compiled")
    assert (env["A"], env["SM_MODEL_DIR"], env["MH_INSTANCE_HOST"]) == ("1", "/m", "10.0.0.7")
    # A server that is not a built-in gets neither, on the node either.
    bare = instance_env({"env": {}}, NodeModel(tmp_path, {}), "10.0.0.7", 8080)
    assert "MH_INSTANCE_PACKAGES_DIR" not in bare and "MH_INSTANCE_COMPILE_CACHE_DIR" not in bare


@dataclass
class Ref:
    value: Any = None
    ready: bool = False
    error: Exception | None = None

    def __await__(self) -> Any:
        return self._answer().__await__()

    async def _answer(self) -> Any:
        return self.value


@dataclass
class NodeSide:
    """A fake actor (`read_log`) over a real `LogBuffer`, answering when told to."""

    buffer: LogBuffer
    calls: list[Ref] = field(default_factory=list)

    def answer(self) -> None:
        for ref in self.calls:
            if not ref.ready:
                since, max_bytes = ref.value
                ref.value, ref.ready = self.buffer.read(since, max_bytes), True

    @property
    def read_log(self) -> NodeSide:
        return self

    def remote(self, since: int | None, max_bytes: int) -> Ref:
        ref = Ref((since, max_bytes))
        self.calls.append(ref)
        return ref


class FakeRay:
    def wait(self, refs: list[Ref], timeout: float) -> tuple[list[Ref], list[Ref]]:
        return [r for r in refs if r.ready], [r for r in refs if not r.ready]

    def get(self, ref: Ref) -> Any:
        if ref.error is not None:
            raise ref.error
        return ref.value


def test_the_gateway_writes_what_it_pulls_into_the_instance_log(tmp_path: Path) -> None:
    log_path = tmp_path / "i-1.log"
    log_path.write_text("modelhost: instance i-1 asked Ray for 0.2 CPU\n")
    node = NodeSide(LogBuffer(cap_bytes=25))
    follower, ray = LogFollower("10.0.0.7"), FakeRay()
    node.buffer.append(b"started\n")
    assert not follower.step(ray, node, log_path)  # asks
    assert not follower.step(ray, node, log_path)  # not answered yet: never blocks
    node.answer()
    follower.step(ray, node, log_path)  # writes, asks again
    for i in range(5):
        node.buffer.append(f"request {i}\n".encode())  # 10 bytes each: 3 dropped
    node.answer()
    follower.step(ray, node, log_path)
    text = log_path.read_text()
    assert text.startswith("modelhost: instance i-1 asked Ray for 0.2 CPU\nstarted\n")
    assert "modelhost: 30 bytes of this instance's output were dropped on node 10.0.0.7" in text
    assert text.endswith("request 3\nrequest 4\n")  # whole lines, never a fragment


def test_an_exit_is_reported_once_the_last_lines_are_in(tmp_path: Path) -> None:
    log_path = tmp_path / "i-1.log"
    node = NodeSide(LogBuffer(cap_bytes=1 << 20))
    follower, ray = LogFollower("n"), FakeRay()
    follower.step(ray, node, log_path)  # a pull in flight from before the exit
    node.buffer.append(b"Traceback (most recent call last):\nValueError: bad model\n")
    node.buffer.close()
    assert not follower.drained(ray, node, log_path, now_s=100.0)
    node.answer()  # the old pull answers: it was asked before the exit, so ask once more
    assert not follower.drained(ray, node, log_path, now_s=100.5)
    node.answer()
    assert follower.drained(ray, node, log_path, now_s=101.0)
    assert log_path.read_text().endswith("ValueError: bad model\n")
    # An actor that never answers holds the exit back DRAIN_S at most.
    stuck, quiet = LogFollower("n"), NodeSide(LogBuffer(16))
    assert not stuck.drained(ray, quiet, log_path, now_s=0.0)
    assert stuck.drained(ray, quiet, log_path, now_s=DRAIN_S + 0.1)


def test_a_dead_actor_ends_the_drain(tmp_path: Path) -> None:
    follower, ray = LogFollower("n"), FakeRay()
    node = NodeSide(LogBuffer(16))
    follower.step(ray, node, tmp_path / "i.log")
    node.calls[0].ready, node.calls[0].error = True, RuntimeError("actor died")
    assert follower.drained(ray, node, tmp_path / "i.log", now_s=0.0)


def test_a_stopping_instances_last_lines_are_drained(tmp_path: Path) -> None:
    import asyncio

    log_path = tmp_path / "i-1.log"
    buffer = LogBuffer(cap_bytes=1 << 20)
    buffer.append(b"x" * 2500 + b"\nshutting down\n")
    follower = LogFollower("n", since=0)

    async def read(since: int | None) -> LogBatch:
        return buffer.read(since, max_bytes=1000)  # three pulls

    asyncio.run(follower.drain(read, log_path))
    assert log_path.read_bytes() == b"x" * 2500 + b"\nshutting down\n"
