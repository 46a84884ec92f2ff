"""The host agent in front of a user's own multi-model server (BYOC): it fetches what
`POST /models` names, loads it with a local path, and unloads for a server that answers 507."""

from __future__ import annotations

import json
import signal
import sys
import tarfile
from pathlib import Path
from typing import Any

from modelhost.container.host_agent import pick_victim
from tests.container.instance_support import Instance

USER_SERVER = Path(__file__).parents[1] / "gateway" / "mme_user_server.py"


def test_the_victim_is_the_least_recently_used_idle_model_that_is_not_fresh() -> None:
    order = {"a": 0.0, "b": 0.0, "c": 0.0}  # least recently used first
    assert pick_victim(order, {}, 10.0, keep="x") == "a"
    assert pick_victim(order, {"a": 1}, 10.0, keep="x") == "b"
    assert pick_victim(order, {}, 10.0, keep="a") == "b"
    fresh = {"a": 15.0, "b": 0.0}  # a was just loaded and not used yet
    assert pick_victim(fresh, {}, 10.0, keep="x") == "b"
    assert pick_victim(fresh, {"b": 2}, 10.0, keep="x") is None
    assert pick_victim(fresh, {"b": 2}, 16.0, keep="x") == "a"  # fresh no longer


def _artifacts(root: Path) -> Path:
    prefix = root / "user-models"
    prefix.mkdir()
    for name in "abc":
        folder = root / name
        folder.mkdir()
        (folder / "value.txt").write_text(f"value-{name}")
        with tarfile.open(prefix / f"{name}.tar.gz", "w:gz") as tar:
            tar.add(folder / "value.txt", arcname="value.txt")
    return prefix


def _load(inst: Instance, name: str, url: str) -> tuple[int, dict[str, Any]]:
    body = json.dumps({"model_name": name, "url": url}).encode()
    status, _, out = inst.request("POST", "/models", body, {"Content-Type": "application/json"})
    return status, json.loads(out)


def test_a_users_server_gets_local_paths_and_room(tmp_path: Path) -> None:
    prefix = _artifacts(tmp_path)
    cache = tmp_path / "cache"
    env = {
        "SAGEMAKER_MULTI_MODEL": "true",
        "MH_INSTANCE_ARTIFACT_CACHE_DIR": str(cache),
        "MAX_MODELS": "2",
    }
    argv = [sys.executable, "-m", "modelhost.container.supervise", "--"]
    argv += [sys.executable, str(USER_SERVER), "serve"]
    with Instance(tmp_path, env, argv) as inst:
        assert inst.wait_ping()[0] == 200, inst.log()
        for name in "ab":
            status, doc = _load(inst, name, f"file://{prefix}/{name}.tar.gz")
            assert status == 200, doc
            assert doc["modelUrl"] == f"file://{prefix}/{name}.tar.gz"
            assert doc["downloadingTimeUs"] >= 0 and doc["evicted"] == []
        # The server was given a directory in the shared artifact cache.
        status, _, out = inst.request("GET", "/models/a")
        assert status == 200 and Path(json.loads(out)["modelUrl"]).parent == cache
        for name in "ba":  # b, then a: b is the least recently used (and not fresh: used)
            status, _, out = inst.request(
                "POST", f"/models/{name}/invoke", b"x", {"Content-Type": "text/plain"}
            )
            assert (status, out) == (200, f"value-{name}".encode())
        # Full (two models): the agent unloads b, the least recently used, for c.
        status, doc = _load(inst, "c", f"file://{prefix}/c.tar.gz")
        assert status == 200, doc
        assert [e["modelName"] for e in doc["evicted"]] == ["b"]
        listing = json.loads(inst.request("GET", "/models")[2])
        assert sorted(m["modelName"] for m in listing["models"]) == ["a", "c"]
        assert listing["peak"] == 2  # never more than the server holds
        assert _load(inst, "a", f"file://{prefix}/a.tar.gz")[0] == 409
        status, doc = _load(inst, "x", f"file://{prefix}/missing.tar.gz")
        assert status == 404
        inst.process.send_signal(signal.SIGTERM)  # forwarded to the server: both exit
        assert inst.process.wait(15) is not None
