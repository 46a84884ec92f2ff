"""The prediction store through a real `modelhost serve`: REST lookups, loads and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from modelhost.testing.redis import local_redis_server
from modelhost.testing.server import ModelhostServer, credentials_for, signed_call
from tests.support import FAST_ENV, unique

pytestmark = pytest.mark.integration


def call(url: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = signed_call(url, method, path, data)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    key_id, secret = credentials_for(url)
    env = {
        **os.environ,
        "MODELHOST_URL": url,
        "MODELHOST_ACCESS_KEY_ID": key_id,
        "MODELHOST_SECRET_ACCESS_KEY": secret,
    }
    return subprocess.run(
        [sys.executable, "-m", "modelhost", "predictions", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def job_output(root: Path, scores: list[str]) -> tuple[str, str]:
    """A transform job's input (customer id, features) and its `.out`, as the job writes them."""
    (root / "in").mkdir(parents=True, exist_ok=True)
    (root / "out").mkdir(parents=True, exist_ok=True)
    ids = ["c-1", "c/2", "c 3"][: len(scores)]
    (root / "in/customers.csv").write_text(
        "customer_id,f1\n" + "".join(f"{i},{n}\n" for n, i in enumerate(ids))
    )
    (root / "out/customers.csv.out").write_text("".join(s + "\n" for s in scores))
    return str(root / "in"), str(root / "out")


def load(url: str, store: str, locations: tuple[str, str], **extra: Any) -> tuple[int, Any]:
    body = {"InputLocation": locations[0], "OutputLocation": locations[1]}
    return call(url, "POST", f"/predictions/{store}/load",
                {**body, "KeyColumn": "customer_id", **extra})  # fmt: skip


def test_lookup_api(server: ModelhostServer, tmp_path: Path) -> None:
    url, store = server.url, unique("web")
    first = job_output(tmp_path, ["0.1", "0.2", "0.3"])
    status, run = load(url, store, first)
    assert status == 200, run
    assert (run["StoreName"], run["KeyCount"], run["Loaded"]) == (store, 3, True)

    status, got = call(url, "GET", f"/predictions/{store}/c-1")
    assert (status, got["Prediction"], got["RunId"]) == (200, "0.1", run["RunId"])
    status, got = call(url, "GET", f"/predictions/{store}/{quote('c/2', safe='')}")
    assert (status, got["Key"], got["Prediction"]) == (200, "c/2", "0.2")
    status, got = call(url, "GET", f"/predictions/{store}/{quote('c 3')}")
    assert (status, got["Prediction"]) == (200, "0.3")

    status, got = call(url, "GET", f"/predictions/{store}/nobody")
    assert status == 404 and got["__type"] == "ResourceNotFound"
    assert f"Key 'nobody' is not in prediction store '{store}'" in got["Message"]
    status, got = call(url, "GET", "/predictions/no-such-store/c-1")
    assert status == 404 and "Prediction store 'no-such-store' does not exist" in got["Message"]
    status, got = call(url, "GET", "/predictions/bad_name!/c-1")
    assert status == 400 and got["__type"] == "ValidationException"
    assert "storeName" in got["Message"]

    status, got = call(url, "POST", f"/predictions/{store}/batch-get", {"Keys": ["c 3", "x"]})
    assert status == 200 and got["Predictions"] == {"c 3": "0.3"} and got["MissingKeys"] == ["x"]
    status, got = call(url, "POST", f"/predictions/{store}/batch-get", ["c-1"])
    assert got["Predictions"] == {"c-1": "0.1"}
    for bad in ({"Keys": []}, {"Keys": "c-1"}, {"Keys": [1]}, {"Keys": ["k"] * 1001}):
        status, got = call(url, "POST", f"/predictions/{store}/batch-get", bad)
        assert status == 400 and got["__type"] == "ValidationException", bad

    status, got = call(url, "GET", f"/predictions/{store}")
    assert (status, got["RunId"], got["KeyCount"]) == (200, run["RunId"], 3)
    assert got["LoadedAt"] > 0 and got["ValueFormat"] == "text"
    status, got = call(url, "GET", "/predictions")
    assert store in [s["StoreName"] for s in got["Stores"]]
    status, got = call(url, "PUT", f"/predictions/{store}")
    # No such route: refused before routing, as AWS's API Gateway does.
    assert status == 403 and got["__type"] == "AccessDeniedException"

    # The same output again: nothing to do. A new night's output replaces the run.
    status, again = load(url, store, first)
    assert status == 200 and again["Loaded"] is False and again["RunId"] == run["RunId"]
    status, new = load(url, store, job_output(tmp_path / "n2", ["0.9", "0.8"]), RunId="night-2")
    assert status == 200 and new["RunId"] == "night-2" and new["KeyCount"] == 2
    assert call(url, "GET", f"/predictions/{store}/c-1")[1]["Prediction"] == "0.9"
    assert call(url, "GET", f"/predictions/{store}/{quote('c 3')}")[0] == 404

    status, got = load(url, store, (str(tmp_path / "nothing"), str(tmp_path / "out")))
    assert status == 400 and "does not exist" in got["Message"]
    assert call(url, "DELETE", f"/predictions/{store}")[0] == 200
    assert call(url, "GET", f"/predictions/{store}")[0] == 404


def test_cli(server: ModelhostServer, tmp_path: Path) -> None:
    store = unique("cli")
    inp, out = job_output(tmp_path, ["0.25", "0.5"])
    done = cli(server.url, "load", store, "--input", inp, "--output", out, "--key", "customer_id")
    assert done.returncode == 0, done.stderr
    assert f"{store}: loaded run run-" in done.stdout and "(2 keys)" in done.stdout
    done = cli(server.url, "load", store, "--input", inp, "--output", out, "--key", "customer_id")
    assert "already current" in done.stdout
    done = cli(server.url, "get", store, "c-1", "c/2")
    assert (done.returncode, done.stdout) == (0, "c-1\t0.25\nc/2\t0.5\n")
    done = cli(server.url, "get", store, "c-1", "ghost")
    assert done.returncode == 1 and "key ghost is not in" in done.stderr
    done = cli(server.url, "list")
    assert store in done.stdout and "2 keys" in done.stdout
    assert store in cli(server.url, "describe", store).stdout
    assert cli(server.url, "delete", store).returncode == 0
    done = cli(server.url, "get", store, "c-1")
    assert done.returncode == 1 and "ResourceNotFound" in done.stderr


def test_redis_backend_through_the_server(tmp_path: Path) -> None:
    with local_redis_server() as redis_url:
        env = {**FAST_ENV, "MODELHOST_PREDICTION_STORE_URL": redis_url}
        with ModelhostServer(tmp_path / "home", env=env) as srv:
            status, run = load(srv.url, "nightly", job_output(tmp_path, ["0.7", "0.6"]))
            assert status == 200, run
            got = call(srv.url, "GET", "/predictions/nightly/c-1")[1]
            assert got["Prediction"] == "0.7"
            assert call(srv.url, "GET", "/predictions/nightly/ghost")[0] == 404
        # The runs live in Redis, not in the server: a new server (new home) reads them.
        with ModelhostServer(tmp_path / "home2", env=env) as srv:
            assert call(srv.url, "GET", "/predictions/nightly/c/2")[1]["Prediction"] == "0.6"
