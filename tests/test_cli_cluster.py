"""`modelhost cluster up|status|down` runs a real PostgreSQL a gateway's store can use."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from modelhost.store.metadata import Kind, MetadataStore, Record
from modelhost.testing.postgres import postgres_bin_dir

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(postgres_bin_dir() is None, reason="PostgreSQL is not installed"),
]


def _cluster(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "modelhost", "cluster", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _url(output: str) -> str:
    found = re.search(r"^export MODELHOST_DATABASE_URL=(\S+)$", output, re.M)
    assert found, output
    return found.group(1)


def test_up_prints_a_url_that_stays_the_same_across_down_and_up(tmp_path: Path) -> None:
    where = str(tmp_path / "cluster")
    try:
        url = _url(_cluster("up", "--dir", where))
        assert _url(_cluster("up", "--dir", where)) == url  # idempotent
        store = MetadataStore(url)
        store.create(Record(Kind.MODEL, "kept", "arn:kept", {}, [], None, None, 1.0, 1.0))
        store.close()
        assert "postgresql: running" in _cluster("status", "--dir", where)
        assert "postgresql: stopped" in _cluster("down", "--dir", where)
        assert "postgresql: stopped" in _cluster("status", "--dir", where)
        assert _url(_cluster("up", "--dir", where)) == url
        store = MetadataStore(url)
        assert store.get(Kind.MODEL, "kept") is not None  # durable across down and up
        store.close()
    finally:
        _cluster("down", "--purge", "--dir", where)


@pytest.mark.ray
def test_up_with_nodes_starts_a_ray_cluster_and_down_stops_it(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    where = str(tmp_path / "cluster")
    try:
        output = _cluster("up", "--dir", where, "--nodes", "3")
        assert "export MODELHOST_FLEET=ray" in output
        address = re.search(r"^export MODELHOST_RAY_ADDRESS=(\S+)$", output, re.M)
        assert address is not None, output
        status = _cluster("status", "--dir", where)
        assert "127.0.1.1 up, 127.0.1.2 up, 127.0.1.3 up" in status, status
        # Idempotent: the same address, no second set of nodes.
        assert address.group(1) in _cluster("up", "--dir", where)
        down = _cluster("down", "--dir", where)
        assert "127.0.1.1 down, 127.0.1.2 down, 127.0.1.3 down" in down, down
    finally:
        _cluster("down", "--purge", "--dir", where)
