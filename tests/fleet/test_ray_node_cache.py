"""A Ray node's side, without Ray: its bounded artifact cache (`node_model`, the actor's
`spawn_instance`) with local archives and real instance-like processes, and a `command:`
server's program run from the node's copy of its artifact (`node_argv`)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelhost.fleet.launch import build_launch_spec, node_store_config
from modelhost.fleet.ray.actor import spawn_instance
from modelhost.fleet.ray.artifacts import (
    NodeModel,
    launch_artifact,
    node_argv,
    node_cache_dir,
    node_model,
)
from modelhost.settings import Settings
from modelhost.store.cache_bound import scan
from tests.support import kill_all

NODE = "127.0.2.1"
MODEL_BYTES = 40_000


def _archive(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("model.bin")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return str(path)


def _launch(tmp_path: Path, name: str, budget_bytes: int) -> dict[str, Any]:
    settings = Settings(
        home=tmp_path / "gateway",
        ray_node_cache_dir=str(tmp_path / "nodes"),
        ray_node_cache_bytes=budget_bytes,
    )
    # Random bytes: the archive's digest (its cache key) differs per model.
    data = os.urandom(MODEL_BYTES)
    url = _archive(tmp_path / "artifacts" / f"{name}.tar.gz", data)
    return {"model_data_url": url, "model_data_source": None, "store": node_store_config(settings)}


@pytest.fixture
def instances() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    kill_all(procs)


def _start(
    tmp_path: Path, model: NodeModel, procs: list[subprocess.Popen[bytes]]
) -> subprocess.Popen[bytes]:
    """What the actor does with the model: an instance process in its directory."""
    argv = [sys.executable, "-c", "import time; time.sleep(300)"]
    proc = spawn_instance(argv, dict(os.environ), model, tmp_path / "logs" / f"{len(procs)}.log")
    procs.append(proc)
    assert model.lease is not None and model.lease.fd == -1  # the actor kept no copy
    return proc


def test_the_budget_holds_and_running_instances_keep_their_models(
    tmp_path: Path, instances: list[subprocess.Popen[bytes]]
) -> None:
    # Room for about two models.
    budget = 2 * MODEL_BYTES + MODEL_BYTES // 2
    cache = node_cache_dir({"cache_dir": str(tmp_path / "nodes")}, NODE)
    a = node_model(_launch(tmp_path, "a", budget), Path("/nonexistent"), {}, NODE)
    first = _start(tmp_path, a, instances)
    b = node_model(_launch(tmp_path, "b", budget), Path("/nonexistent"), {}, NODE)
    _start(tmp_path, b, instances)
    # Over budget with both in use: nothing is evicted, the instance log says why.
    c = node_model(_launch(tmp_path, "c", budget), Path("/nonexistent"), {}, NODE)
    assert "over budget" in c.note and "evicted 0 entries" in c.note
    assert a.model_dir.is_dir() and b.model_dir.is_dir()
    assert c.lease is not None
    c.lease.close()  # c's instance never started: c is idle, the newest of the cache
    # kill -9 of a's instance frees a's entry; the next model added evicts the idle ones,
    # a (the least recently used) and c, never b (running), and the cache fits again.
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=60)
    d = node_model(_launch(tmp_path, "d", budget), Path("/nonexistent"), {}, NODE)
    assert d.lease is not None
    d.lease.close()
    assert not a.model_dir.exists() and not c.model_dir.exists()
    assert f"evicted 2 entries ({2 * MODEL_BYTES} bytes freed)" in d.note
    assert b.model_dir.is_dir() and d.model_dir.is_dir()
    assert sum(e.size_bytes for e in scan(cache)) <= budget
    assert (b.model_dir / "model.bin").stat().st_size == MODEL_BYTES


def test_an_instance_finds_an_evicted_model_fetched_again(tmp_path: Path) -> None:
    launch = _launch(tmp_path, "again", 1)
    first = node_model(launch, Path("/nonexistent"), {}, NODE)
    assert first.lease is not None
    first.lease.close()
    # Another model arrives under a 1-byte budget: the idle one goes.
    other = node_model(_launch(tmp_path, "other", 1), Path("/nonexistent"), {}, NODE)
    assert other.lease is not None
    other.lease.close()
    assert not first.model_dir.exists()
    again = node_model(launch, Path("/nonexistent"), {}, NODE)
    assert again.lease is not None
    again.lease.close()
    assert " fetched on node" in again.note
    assert (again.model_dir / "model.bin").stat().st_size == MODEL_BYTES


def test_a_directory_used_in_place_is_neither_leased_nor_evicted(tmp_path: Path) -> None:
    model = tmp_path / "in-place"
    model.mkdir()
    (model / "model.bin").write_bytes(b"x" * MODEL_BYTES)
    launch = _launch(tmp_path, "unused", 1)
    launch["model_data_url"] = str(model)
    got = node_model(launch, Path("/nonexistent"), {}, NODE)
    assert got.model_dir == model and got.lease is None
    assert (model / "model.bin").exists()


# --- a `command:` server's program, shipped in its artifact ------------------------------


def _server_archive(path: Path, mode: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    script = b'#!/bin/sh\necho serving "$@" from "$SM_MODEL_DIR"\n'
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("bin/serve.sh")
        info.size, info.mode = len(script), mode
        tar.addfile(info, io.BytesIO(script))
    return str(path)


def test_a_command_servers_program_runs_from_the_nodes_copy(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "gateway", ray_node_cache_dir=str(tmp_path / "nodes"))
    url = _server_archive(tmp_path / "artifacts" / "server.tar.gz", 0o755)
    spec = build_launch_spec(
        settings=settings,
        endpoint_name="e",
        variant_name="v",
        model_name="m",
        model_spec={
            "PrimaryContainer": {"Image": "command:bin/serve.sh -w 2", "ModelDataUrl": url}
        },
        fetch=_no_fetch,
        fetch_source=_no_fetch,
        node_fetch=True,
    )
    model = node_model(launch_artifact(spec), spec.model_dir, spec.env, NODE)
    argv = node_argv(spec.argv, spec.model_dir, model.model_dir)
    program = model.model_dir / "bin" / "serve.sh"
    assert argv[-4:] == [str(program), "-w", "2", "serve"]
    assert argv[:4] == spec.argv[:4]  # the supervisor's part is untouched
    # The program runs from the node's copy, in it, with SM_MODEL_DIR pointing there.
    out = subprocess.run(
        argv[4:],
        env={**os.environ, **model.env},
        cwd=model.model_dir,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.strip() == f"serving -w 2 serve from {model.model_dir}"
    assert model.lease is not None
    model.lease.close()


@pytest.mark.parametrize(
    ("mode", "problem"), [(0o644, "not executable"), (None, "not in the model's artifact")]
)
def test_a_missing_or_unexecutable_program_is_named_on_the_node(
    tmp_path: Path, mode: int | None, problem: str
) -> None:
    node_dir = tmp_path / "node-copy"
    (node_dir / "bin").mkdir(parents=True)
    if mode is not None:
        (node_dir / "bin" / "serve.sh").write_text("#!/bin/sh\n")
        (node_dir / "bin" / "serve.sh").chmod(mode)
    placeholder = tmp_path / "gateway" / "empty-model"
    with pytest.raises(OSError, match=problem):
        node_argv(["python", "--", str(placeholder / "bin" / "serve.sh")], placeholder, node_dir)
    # Words elsewhere (a shared path, the placeholder itself) are left as they are.
    assert node_argv(["/bin/sh", str(placeholder)], placeholder, node_dir) == [
        "/bin/sh",
        str(placeholder),
    ]


def _no_fetch(_: Any) -> Path:
    raise AssertionError("the gateway fetched the artifact")


def test_a_failed_eviction_does_not_fail_the_start(tmp_path: Path) -> None:
    launch = _launch(tmp_path, "kept", 1)
    first = node_model(launch, Path("/nonexistent"), {}, NODE)
    assert first.lease is not None
    first.lease.close()
    cache = node_cache_dir(launch["store"], NODE)
    (cache / ".locks" / "evict.lock").unlink()
    (cache / ".locks" / "evict.lock").mkdir()  # eviction's lock cannot be opened now
    other = node_model(_launch(tmp_path, "other", 1), Path("/nonexistent"), {}, NODE)
    assert "eviction failed" in other.note and other.model_dir.is_dir()
    assert other.lease is not None
    other.lease.close()
