"""A Ray node's bounded artifact cache, without Ray: the node side (`node_model`, the
actor's `spawn_instance`) with local archives and real instance-like processes."""

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

from modelhost.fleet.launch import node_store_config
from modelhost.fleet.ray.actor import spawn_instance
from modelhost.fleet.ray.artifacts import NodeModel, node_cache_dir, node_model
from modelhost.settings import Settings
from modelhost.store.cache_bound import scan

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
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)


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
