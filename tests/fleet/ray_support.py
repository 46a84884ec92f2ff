"""Helpers for the Ray fleet tests: where each instance of an endpoint runs."""

from __future__ import annotations

import contextlib
import time
import urllib.request
from pathlib import Path

from modelhost.testing.server import ModelhostServer
from tests.support import instance_pids


def instance_addresses(home: Path, endpoint: str) -> dict[int, tuple[str, int]]:
    """pid → (node address, port) of each live instance process of `endpoint`: its
    MH_INSTANCE_HOST (the Ray actor sets it to its node's address) and its port. Found by
    their output (a log file under `home`) or, for instances whose output their actor
    ships (a pipe: `ray_instance_logs = ship`), by their environment."""
    found = {}
    for pid in instance_pids(home, endpoint) | _pids_by_environment(endpoint):
        env = _environment(pid)
        if "MH_INSTANCE_HOST" in env:
            found[pid] = (env["MH_INSTANCE_HOST"], int(env["SAGEMAKER_BIND_TO_PORT"]))
    return found


def _environment(pid: int) -> dict[str, str]:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return {}
    return dict(e.decode(errors="replace").split("=", 1) for e in environ if b"=" in e)


def _pids_by_environment(endpoint: str) -> set[int]:
    """Live Ray instance processes whose environment names `endpoint` (names are unique
    per test, so another server's instances never match)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        env = _environment(int(entry.name))
        if env.get("MH_INSTANCE_ENDPOINT_NAME") != endpoint or "MH_INSTANCE_HOST" not in env:
            continue
        try:
            state = (entry / "stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if state != "Z":
            pids.add(int(entry.name))
    return pids


def instance_hosts(home: Path, endpoint: str) -> list[str]:
    """The node address of each live instance process of `endpoint`, sorted."""
    return sorted(host for host, _ in instance_addresses(home, endpoint).values())


def serving_hosts(home: Path, endpoint: str) -> list[str]:
    """The node addresses of the instances of `endpoint` that answer /ping with 200."""
    hosts = []
    for host, port in instance_addresses(home, endpoint).values():
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/ping", timeout=2) as resp:
                if resp.status == 200:
                    hosts.append(host)
        except OSError:
            continue
    return sorted(hosts)


def delete_every_endpoint(server: ModelhostServer, timeout_s: float = 120.0) -> None:
    """Delete the endpoints left on `server` and wait until they are gone. Endpoint
    instances on Ray outlive a gateway that stops, so a module's server deletes what its
    tests left before it stops (xdist may run another module's tests in between)."""
    sm = server.client("sagemaker")
    for endpoint in sm.list_endpoints(MaxResults=100)["Endpoints"]:
        with contextlib.suppress(sm.exceptions.ClientError):
            sm.delete_endpoint(EndpointName=endpoint["EndpointName"])
    deadline = time.monotonic() + timeout_s
    while sm.list_endpoints(MaxResults=100)["Endpoints"]:
        assert time.monotonic() < deadline, "endpoints not deleted in time"
        time.sleep(0.2)
