"""The compiled tier's cache end to end: a real server with `compile_tree_models` on and a
one-byte `compiled_cache_bytes`, a multi-model endpoint whose instance holds two models.
A model the instance evicts has its compiled library dlclosed (no process maps it any
more) and its entry removed by the leader's periodic pass; the models still loaded keep
theirs (leased) and answer with the same bits. A copy of a loaded model (same files) is
not compiled again: it shares the library, which `DELETE /models/{name}` releases only
once both are unloaded."""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pytest

from modelhost.container.compile_tier import model_digest
from modelhost.container.loading import directory_bytes
from modelhost.testing.churn import make_churn
from modelhost.testing.server import ModelhostServer
from modelhost.testing.state_models import StateModels, write_state_models
from tests.support import FAST_ENV, deploy, unique
from tests.tier_support import attached_lines, log_lines, predict


@pytest.fixture(scope="module")
def bound_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelhostServer]:
    env = {
        **FAST_ENV,
        "MODELHOST_LOGS_POLL_INTERVAL_S": "0.2",
        "MODELHOST_COMPILE_TREE_MODELS": "true",
        "MODELHOST_COMPILED_CACHE_BYTES": "1",  # nothing idle is kept
        "MODELHOST_ARTIFACT_CACHE_EVICT_INTERVAL_S": "0.5",
    }
    with ModelhostServer(tmp_path_factory.mktemp("tierbound-home"), env=env) as srv:
        yield srv


@pytest.fixture(scope="module")
def states(tmp_path_factory: pytest.TempPathFactory) -> StateModels:
    models = write_state_models(
        make_churn(3000, seed=5), tmp_path_factory.mktemp("tierbound-states"), states=("CA", "NY")
    )
    # The same files under another name: the same digest, so the same compiled form.
    shutil.copy(models.prefix / "NY.tar.gz", models.prefix / "NYCOPY.tar.gz")
    return models


def _unpacked(states: StateModels, state: str, root: Path) -> Path:
    folder = root / state
    folder.mkdir(parents=True)
    with tarfile.open(states.prefix / f"{state}.tar.gz") as tar:
        tar.extractall(folder, filter="data")
    return folder


def _mapping_pids(library: Path) -> list[int]:
    """Processes that map `library` (an instance that loaded it and did not dlclose it)."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            maps = Path(f"/proc/{pid}/maps").read_text()
        except OSError:  # gone, or not ours
            continue
        if str(library) in maps:
            pids.append(int(pid))
    return pids


def _until(condition: Callable[[], object], what: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


@pytest.mark.integration
def test_an_evicted_models_library_is_released_and_its_entry_evicted_by_the_pass(
    bound_server: ModelhostServer, states: StateModels, tmp_path: Path
) -> None:
    sm, rt = bound_server.clients()
    logs = bound_server.client("logs")
    ca, ny = (_unpacked(states, s, tmp_path) for s in ("CA", "NY"))
    compiled = bound_server.home / "compiled"
    ca_lib = compiled / model_digest(ca, "XGBOOST") / "model.so"
    ny_lib = compiled / model_digest(ny, "XGBOOST") / "model.so"
    # Room for two of the (equal-sized) models: a third load evicts the least recent.
    budget = int(2.5 * max(directory_bytes(ca), directory_bytes(ny)))
    name = unique("tierbound")
    environment = {
        "MH_INSTANCE_COMPILE_MAX_ROWS": "64",
        "MH_INSTANCE_MODEL_CACHE_BYTES": str(budget),
    }
    deploy(sm, name, str(states.prefix) + "/", mode="MultiModel", environment=environment)
    for state in ("CA", "NY"):
        assert np.array_equal(
            predict(rt, name, state, states.rows[state]), states.expected(state, states.rows[state])
        )
    _until(lambda: len(attached_lines(logs, name)) == 2, "both models compiled and attached")
    assert ca_lib.is_file() and ny_lib.is_file()  # leased: kept under a one-byte budget
    instances = _mapping_pids(ca_lib)
    assert len(instances) == 1 and _mapping_pids(ny_lib) == instances

    # NYCOPY evicts CA (least recently used) and attaches NY's form without compiling.
    rows = states.rows["NY"]
    assert np.array_equal(predict(rt, name, "NYCOPY", rows), states.expected("NY", rows))
    _until(lambda: len(attached_lines(logs, name)) == 3, "the copy attached NY's form")
    assert _mapping_pids(ca_lib) == []  # dlclosed when the instance unloaded CA
    _until(lambda: not ca_lib.parent.exists(), "the pass evicted CA's idle entry")
    assert ny_lib.is_file() and _mapping_pids(ny_lib) == instances
    for target in ("NY", "NYCOPY"):  # still the compiled form, still the same bits
        assert np.array_equal(predict(rt, name, target, rows), states.expected("NY", rows))
    assert len(log_lines(logs, name, "to native code in the background")) == 2  # CA, NY

    # DELETE /models/{name} on the instance itself: NY's library stays while NYCOPY uses
    # it, and leaves the process (then the cache) with the second unload.
    (pid,) = instances
    port = _listening_port(pid)
    loaded = _instance(port, "GET", "/models")["models"]
    ny_names = sorted(m["modelName"] for m in loaded if "NY" in m["modelName"])
    assert len(ny_names) == 2, loaded
    _instance(port, "DELETE", f"/models/{quote(ny_names[0], safe='')}")
    assert _mapping_pids(ny_lib) == instances
    _instance(port, "DELETE", f"/models/{quote(ny_names[1], safe='')}")
    assert _mapping_pids(ny_lib) == []
    _until(lambda: not ny_lib.parent.exists(), "the pass evicted NY's idle entry")
    sm.delete_endpoint(EndpointName=name)


def _listening_port(pid: int) -> int:
    """The TCP port `pid` listens on (a forked instance's environ is its zygote's, so the
    port is found by its socket: /proc/PID/fd's socket inodes in /proc/PID/net/tcp)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and fields[9] in inodes:  # LISTEN, one of its sockets
            return int(fields[1].split(":")[1], 16)
    raise AssertionError(f"process {pid} listens on no TCP port")


def _instance(port: int, method: str, path: str) -> dict[str, Any]:
    """The instance's own `/models` API (the gateway's hop, taken directly)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    with urllib.request.urlopen(request, timeout=60) as answer:
        doc: dict[str, Any] = json.loads(answer.read())
    return doc
