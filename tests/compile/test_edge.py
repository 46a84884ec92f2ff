"""Edge packages: unpacked anywhere, served by a bare Python (-I -S), with store-and-forward."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from modelhost.cli import main
from modelhost.compile.build import CompileRequest, compile_model
from modelhost.fleet.local import free_port
from modelhost.testing.churn import csv_body
from modelhost.testing.server import ModelhostServer, signed_call
from tests.compile.conftest import Case, data
from tests.support import FAST_ENV

pytestmark = pytest.mark.integration


def compiled(case: Case, root: Path) -> Path:
    model_dir = root / "in"
    with tarfile.open(case.artifact) as tar:
        tar.extractall(model_dir, filter="data")
    out = root / "compiled"
    compile_model(CompileRequest(model_dir, case.framework, None, out, 120))
    return out


def packaged(case: Case, root: Path, *extra: str) -> Path:
    """`modelhost edge package`, then the tarball unpacked elsewhere (a fresh machine)."""
    out = root / "pkg"
    result = CliRunner().invoke(
        main, ["edge", "package", str(compiled(case, root)), "--out", str(out), *extra]
    )
    assert result.exit_code == 0, result.output
    device = root / "device"
    with tarfile.open(root / "pkg.tar.gz") as tar:
        tar.extractall(device, filter="data")
    manifest = json.loads((device / "pkg" / "manifest.json").read_text())
    assert manifest["num_feature"] == 8 and manifest["modelhost_version"]
    assert set(manifest["content_types"]) == {"text/csv", "application/json"}
    return device / "pkg"


@contextmanager
def edge_server(folder: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    port = free_port()
    log = folder / "serve.log"
    # -I -S: no site-packages, no user site, no PYTHON* variables: the standard library only.
    argv = [sys.executable, "-I", "-S", "serve.py", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            [*argv, *args],
            cwd=folder,
            env={"PATH": os.environ.get("PATH", ""), **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(url + "/ping", timeout=1) as resp:
                    assert resp.status == 200
                    break
            except (urllib.error.URLError, OSError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(log.read_text()) from None
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def invoke(url: str, body: str, content_type: str, accept: str) -> Any:
    req = urllib.request.Request(
        url + "/invocations",
        data=body.encode(),
        headers={"Content-Type": content_type, "Accept": accept},
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.read().decode()


@pytest.mark.parametrize("kind", ["xgb-multi", "sklearn-gb"])
def test_package_serves_with_the_standard_library_only(
    cases: dict[str, Case], tmp_path: Path, kind: str
) -> None:
    case = cases[kind]
    folder = packaged(case, tmp_path)
    x, _ = data(seed=5, missing=kind != "sklearn-gb")
    x = x[:10]
    expected = case.expected(x)
    with edge_server(folder) as url:
        answer = json.loads(invoke(url, csv_body(x), "text/csv", "application/json"))
        rows = json.dumps([[None if np.isnan(v) else float(v) for v in row] for row in x])
        again = json.loads(invoke(url, rows, "application/json", "application/json"))
    assert answer == again
    if kind == "sklearn-gb":
        assert answer == expected.tolist()
    else:
        got = np.array([p["score"] for p in answer["predictions"]])
        np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)


def test_store_and_forward_uploads_after_the_target_comes_up(
    cases: dict[str, Case], tmp_path: Path
) -> None:
    server = ModelhostServer(tmp_path / "home", env=FAST_ENV)
    server.start()  # once, to create its admin key; it is down while the edge works
    server.stop()
    key_id, secret = server.credentials
    target = f"{server.url}/api/edge-captures/edge-test"
    folder = packaged(cases["xgb-binary"], tmp_path, "--capture-to", target)
    creds = {"AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret}
    x, _ = data(seed=6)
    with edge_server(folder, "--capture-interval-s", "0.2", env=creds) as url:
        for row in x[:5]:
            invoke(url, csv_body(row[None, :]), "text/csv", "text/csv")
        pending = folder / "capture" / "pending"
        deadline = time.monotonic() + 10
        while not list(pending.glob("*.jsonl")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(pending.glob("*.jsonl")), "the edge buffers while the target is down"
        with server:  # starts it again, on the same port
            deadline = time.monotonic() + 90  # the edge backs off while the target was down
            listed: dict[str, Any] = {}
            while time.monotonic() < deadline:
                with urllib.request.urlopen(
                    signed_call(server.url, "GET", "/api/edge-captures/edge-test"), timeout=5
                ) as resp:
                    listed = json.loads(resp.read())
                if listed["Records"] >= 5:
                    break
                time.sleep(0.2)
            assert listed["Records"] == 5, listed
            assert not list(pending.glob("*.jsonl"))
    path = tmp_path / "home" / "data-capture" / "edge" / "edge-test"
    events = [
        json.loads(line) for f in path.rglob("*.jsonl") for line in f.read_text().splitlines()
    ]
    assert {e["captureData"]["endpointInput"]["observedContentType"] for e in events} == {
        "text/csv"
    }
    assert all(e["captureData"]["endpointOutput"]["data"].strip() for e in events)
