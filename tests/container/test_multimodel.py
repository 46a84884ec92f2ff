"""The multi-model container API in a real instance process (SAGEMAKER_MULTI_MODEL=true)."""

from __future__ import annotations

import json
import shutil
import tarfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelhost.container.multimodel import directory_bytes
from modelhost.testing.churn import csv_body
from modelhost.testing.state_models import StateModels
from tests.container.instance_support import STATES, Instance


@pytest.fixture(scope="module")
def unpacked(models: StateModels) -> dict[str, Path]:
    """Each state's artifact unpacked, as the gateway hands it to the instance."""
    out = {}
    for state in STATES:
        target = models.prefix / "unpacked" / state
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(models.prefix / f"{state}.tar.gz") as tar:
            tar.extractall(target, filter="data")
        out[state] = target
    return out


def _start(tmp_path: Path, budget_bytes: int | None = None) -> Instance:
    env = {"SAGEMAKER_MULTI_MODEL": "true"}
    if budget_bytes is not None:
        env["MH_INSTANCE_MODEL_CACHE_BYTES"] = str(budget_bytes)
    empty = tmp_path / "empty"
    empty.mkdir(exist_ok=True)
    inst = Instance(empty, env)
    status, _ = inst.wait_ping()
    assert status == 200, inst.log()
    return inst


def _load(inst: Instance, name: str, url: Path) -> tuple[int, dict[str, Any]]:
    body = json.dumps({"model_name": name, "url": str(url)}).encode()
    status, _, out = inst.request("POST", "/models", body, {"Content-Type": "application/json"})
    return status, json.loads(out)


def _invoke(inst: Instance, name: str, X: np.ndarray) -> tuple[int, bytes]:
    status, _, out = inst.request(
        "POST",
        f"/models/{name}/invoke",
        csv_body(X).encode(),
        {"Content-Type": "text/csv", "X-Amzn-SageMaker-Target-Model": f"{name}.tar.gz"},
    )
    return status, out


def _scores(out: bytes) -> np.ndarray:
    return np.array([float(v) for v in out.decode().replace("\n", ",").split(",") if v])


def test_load_list_invoke_unload(
    tmp_path: Path, models: StateModels, unpacked: dict[str, Path]
) -> None:
    with _start(tmp_path) as inst:
        status, doc = _load(inst, "CA.tar.gz", unpacked["CA"])
        assert status == 200, doc
        assert doc["memoryBytes"] == directory_bytes(unpacked["CA"]) and doc["evicted"] == []
        assert _load(inst, "CA.tar.gz", unpacked["CA"])[0] == 409
        assert _load(inst, "NY.tar.gz", unpacked["NY"])[0] == 200

        status, _, out = inst.request("GET", "/models")
        listing = json.loads(out)
        assert [m["modelName"] for m in listing["models"]] == ["CA.tar.gz", "NY.tar.gz"]
        assert listing["models"][0]["modelUrl"] == str(unpacked["CA"])
        status, _, out = inst.request("GET", "/models?limit=1")
        page = json.loads(out)
        assert [m["modelName"] for m in page["models"]] == ["CA.tar.gz"]
        status, _, out = inst.request(
            "GET", f"/models?limit=1&next_page_token={page['nextPageToken']}"
        )
        assert [m["modelName"] for m in json.loads(out)["models"]] == ["NY.tar.gz"]
        assert "nextPageToken" not in json.loads(out)

        for state in ("CA", "NY"):
            status, out = _invoke(inst, f"{state}.tar.gz", models.rows[state])
            assert status == 200, out
            np.testing.assert_allclose(
                _scores(out), models.expected(state, models.rows[state]), rtol=1e-6
            )
        status, _, out = inst.request("GET", "/models/CA.tar.gz")
        assert status == 200 and json.loads(out)["modelName"] == "CA.tar.gz"

        status, _, _ = inst.request("DELETE", "/models/CA.tar.gz")
        assert status == 200
        assert inst.request("GET", "/models/CA.tar.gz")[0] == 404
        assert inst.request("DELETE", "/models/CA.tar.gz")[0] == 404
        assert _invoke(inst, "CA.tar.gz", models.rows["CA"])[0] == 404
        # /invocations is not how a multi-model instance is called.
        assert inst.invoke(b"1,2", "text/csv")[0] == 400


def test_bad_loads(tmp_path: Path, unpacked: dict[str, Path]) -> None:
    with _start(tmp_path) as inst:
        status, _, _ = inst.request("POST", "/models", b"{}")
        assert status == 400
        status, doc = _load(inst, "x", tmp_path / "missing")
        assert status == 404 and "not a directory" in doc["message"]
        junk = tmp_path / "junk"
        junk.mkdir()
        (junk / "readme.txt").write_text("not a model")
        status, doc = _load(inst, "junk", junk)
        assert status == 400 and "No model file" in doc["message"]
        # A failed load leaves nothing behind: the same name can load a good model.
        assert _load(inst, "junk", unpacked["CA"])[0] == 200


def test_lru_eviction_within_budget(
    tmp_path: Path, models: StateModels, unpacked: dict[str, Path]
) -> None:
    sizes = {s: directory_bytes(unpacked[s]) for s in STATES}
    budget = sizes["CA"] + sizes["NY"] + sizes["TX"]
    with _start(tmp_path, budget) as inst:
        for state in ("CA", "NY", "TX"):
            assert _load(inst, state, unpacked[state])[0] == 200
            assert _invoke(inst, state, models.rows[state])[0] == 200
        assert _invoke(inst, "CA", models.rows["CA"])[0] == 200  # CA is now the most recent
        status, doc = _load(inst, "WA", unpacked["WA"])
        assert status == 200
        evicted = [e["modelName"] for e in doc["evicted"]]
        assert evicted and evicted[0] == "NY" and "CA" not in evicted
        assert all(e["unloadingTimeUs"] >= 0 for e in doc["evicted"])
        listing = json.loads(inst.request("GET", "/models")[2])
        assert listing["usedBytes"] <= budget
        assert "CA" in [m["modelName"] for m in listing["models"]]


def test_a_model_larger_than_the_budget_is_507(tmp_path: Path, unpacked: dict[str, Path]) -> None:
    with _start(tmp_path, directory_bytes(unpacked["CA"]) - 1) as inst:
        status, doc = _load(inst, "CA", unpacked["CA"])
        assert status == 507 and "MH_INSTANCE_MODEL_CACHE_BYTES" in doc["message"]


def test_concurrent_loads_of_one_model_load_once(tmp_path: Path, unpacked: dict[str, Path]) -> None:
    with _start(tmp_path) as inst, ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: _load(inst, "TX", unpacked["TX"])[0], range(8)))
        assert sorted(statuses) == [200] + [409] * 7
        assert inst.log().count("model TX loaded") == 1


def test_eviction_frees_memory(tmp_path: Path, churn_model: Any) -> None:
    """Hundreds of load/evict cycles of a 100-tree model: the RSS stays flat."""
    source = tmp_path / "big"
    with tarfile.open(churn_model.artifact) as tar:
        tar.extractall(source, filter="data")
    dirs = []
    for i in range(3):
        dirs.append(tmp_path / f"copy{i}")
        shutil.copytree(source, dirs[-1])
    X = churn_model.data.X[:1]
    with _start(tmp_path, directory_bytes(source)) as inst:  # room for exactly one

        def rss_kib() -> int:
            status = Path(f"/proc/{inst.process.pid}/status").read_text()
            return int(
                next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1]
            )

        def cycle(rounds: int) -> None:
            for _round in range(rounds):
                for i, d in enumerate(dirs):
                    status, doc = _load(inst, f"m{i}", d)
                    assert status == 200, doc
                    ok, _, _ = inst.request(
                        "POST", f"/models/m{i}/invoke", csv_body(X), {"Content-Type": "text/csv"}
                    )
                    assert ok == 200
                    assert len(doc["evicted"]) == (0 if not rounds_done else 1)
                    rounds_done.append(1)

        rounds_done: list[int] = []
        cycle(20)  # warm up: the allocator reaches its steady state
        before = rss_kib()
        cycle(60)
        after = rss_kib()
        assert len(rounds_done) == 240
        # One model is a few hundred KiB; a leak of it per cycle would add tens of MiB.
        print(f"RSS {before} KiB -> {after} KiB over 180 load/evict cycles")
        assert after - before < 16 * 1024, (before, after)


SLOW_SCRIPT = """
import time


def model_fn(model_dir):
    return open(model_dir + "/name.txt").read()


def input_fn(body, content_type):
    return body


def predict_fn(data, model):
    time.sleep(float(data))
    return model


def output_fn(prediction, accept):
    return prediction
"""


def _script_model(root: Path, name: str) -> Path:
    folder = root / name
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "inference.py").write_text(SLOW_SCRIPT)
    (folder / "name.txt").write_text(name)
    return folder


def test_a_model_with_a_request_in_flight_is_not_evicted(tmp_path: Path) -> None:
    """Room for one model: loading B waits until A's running request ends, then evicts A."""
    a, b = _script_model(tmp_path, "a"), _script_model(tmp_path, "b")
    budget = max(directory_bytes(a), directory_bytes(b))
    with _start(tmp_path, budget) as inst, ThreadPoolExecutor(2) as pool:
        assert _load(inst, "a", a)[0] == 200
        finished: dict[str, float] = {}

        def slow_request() -> tuple[int, dict[str, str], bytes]:
            out = inst.request("POST", "/models/a/invoke", b"1.5", {"Content-Type": "text/plain"})
            finished["a"] = time.monotonic()
            return out

        slow = pool.submit(slow_request)
        # The load starts while A is busy (its request sleeps in predict_fn).
        deadline = time.monotonic() + 60  # generous: a loaded machine may be slow to send
        while json.loads(inst.request("GET", "/models/a")[2])["inFlight"] == 0:
            assert time.monotonic() < deadline, "the slow request never reached the instance"
            threading.Event().wait(0.05)
        status, doc = _load(inst, "b", b)
        finished["b"] = time.monotonic()
        status_a, _, body_a = slow.result(timeout=30)
        assert finished["a"] <= finished["b"]  # the load waited for A's request
        assert status_a == 200 and body_a == b"a"  # A finished its request...
        assert status == 200 and [e["modelName"] for e in doc["evicted"]] == ["a"]  # ...then left
        status, _, body = inst.request(
            "POST", "/models/b/invoke", b"0", {"Content-Type": "text/plain"}
        )
        assert (status, body) == (200, b"b")


def test_a_fresh_model_is_kept_for_its_first_request(
    tmp_path: Path, models: StateModels, unpacked: dict[str, Path]
) -> None:
    """Room for one: B's load waits while A (just loaded, not yet invoked) is fresh."""
    with (
        _start(tmp_path, directory_bytes(unpacked["CA"]) + 16) as inst,
        ThreadPoolExecutor(1) as pool,
    ):
        assert _load(inst, "CA", unpacked["CA"])[0] == 200
        later = pool.submit(_load, inst, "NY", unpacked["NY"])  # waits for room
        status, out = _invoke(inst, "CA", models.rows["CA"])  # CA's own request still finds it
        assert status == 200, out
        status, doc = later.result(timeout=30)
        assert status == 200 and [e["modelName"] for e in doc["evicted"]] == ["CA"]


def test_an_announced_request_keeps_its_model(
    tmp_path: Path, models: StateModels, unpacked: dict[str, Path]
) -> None:
    """Room for one: CA was used already, but a load that says `expect_use` (409, it is
    loaded) keeps it for that request; NY's load waits until it has been served."""
    with (
        _start(tmp_path, directory_bytes(unpacked["CA"]) + 16) as inst,
        ThreadPoolExecutor(1) as pool,
    ):
        assert _load(inst, "CA", unpacked["CA"])[0] == 200
        assert _invoke(inst, "CA", models.rows["CA"])[0] == 200  # its first use: evictable
        body = json.dumps({"model_name": "CA", "url": str(unpacked["CA"]), "expect_use": True})
        status, _, out = inst.request(
            "POST", "/models", body.encode(), {"Content-Type": "application/json"}
        )
        assert status == 409, out
        later = pool.submit(_load, inst, "NY", unpacked["NY"])  # waits for room
        status, out = _invoke(inst, "CA", models.rows["CA"])  # the announced request
        assert status == 200, out
        status, doc = later.result(timeout=60)
        assert status == 200 and [e["modelName"] for e in doc["evicted"]] == ["CA"]
