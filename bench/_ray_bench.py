"""Pieces of `ray_scaleout.py` and `failover.py`: deploying the churn model on a Ray fleet,
where its instances run, a request loop that times every outcome, a node's loss under that
loop, and writing the results."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from _modelhost import deploy_named
from modelhost import demo
from modelhost.testing.ray import RayCluster, node_address

RESULTS_DIR = Path(__file__).resolve().parent / "results"
IMAGE = demo.XGBOOST_IMAGE


def deploy(sm: Any, name: str, artifact: Path, instances: int) -> None:
    """Model, endpoint config and endpoint `name` (`instances` instances), InService."""
    container = {"Image": IMAGE, "ModelDataUrl": str(artifact)}
    deploy_named(sm, name, container, instances, max_attempts=600)


def instance_addresses(endpoint: str) -> list[tuple[str, int]]:
    """(node address, port) of each live instance process of `endpoint`, from the
    environment the Ray actor gave it (MH_INSTANCE_HOST, SAGEMAKER_BIND_TO_PORT)."""
    marker = f"MH_INSTANCE_ENDPOINT_NAME={endpoint}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker in environ:
            env = dict(e.decode().split("=", 1) for e in environ if b"=" in e)
            if "MH_INSTANCE_HOST" in env:
                found.append((env["MH_INSTANCE_HOST"], int(env["SAGEMAKER_BIND_TO_PORT"])))
    return sorted(found)


def instance_hosts(endpoint: str) -> list[str]:
    return [host for host, _ in instance_addresses(endpoint)]


def all_serve(addresses: list[tuple[str, int]]) -> bool:
    for host, port in addresses:
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/ping", timeout=2) as resp:
                if resp.status != 200:
                    return False
        except OSError:
            return False
    return True


def until(condition: Callable[..., object], timeout_s: float = 180.0) -> float | None:
    """Seconds until `condition()` held, or None when it did not within `timeout_s`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if condition():
            return time.monotonic() - start
        time.sleep(0.02)
    return None


class RequestLoop:
    """Invokes an endpoint from a thread, one request at a time; every outcome timed."""

    def __init__(self, url: str, row: str) -> None:
        self.url, self.row = url, row.encode()
        self.outcomes: list[tuple[float, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            req = urllib.request.Request(self.url, self.row, {"Content-Type": "text/csv"})
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    ok = resp.status == 200
            except OSError:
                ok = False
            self.outcomes.append((time.monotonic(), ok))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def failed_since(self, t0: float) -> int:
        return sum(1 for t, ok in self.outcomes if t >= t0 and not ok)

    def count_since(self, t0: float) -> int:
        return sum(1 for t, _ in self.outcomes if t >= t0)

    def failed_at_s(self, t0: float) -> list[float]:
        """When each failure came, in seconds after `t0`."""
        return [t - t0 for t, ok in self.outcomes if t >= t0 and not ok]


def node_loss(
    cluster: RayCluster, url: str, name: str, row: str, count: int, settle_s: float = 0.0
) -> dict[str, Any]:
    """SIGKILL the raylet of a non-head node holding an instance of `name` under a request
    loop through the gateway at `url`: how long until `count` instances serve again, none
    on that node, and the requests (sent after the kill) that failed."""
    victim = next(h for h in instance_hosts(name) if h != node_address(0))
    loop = RequestLoop(f"{url}/endpoints/{name}/invocations", row)
    time.sleep(2.0)
    killed = time.monotonic()
    cluster.kill_node([node_address(i) for i in range(cluster.nodes)].index(victim))

    def back() -> bool:
        addresses = instance_addresses(name)
        on = [h for h, _ in addresses]
        return len(on) == count and victim not in on and all_serve(addresses)

    back_s = until(back)
    time.sleep(settle_s)
    loop.stop()
    return {
        "victim": victim,
        "back_s": back_s,
        "requests": loop.count_since(killed),
        "failed_requests": loop.failed_since(killed),
        "failed_at_s": loop.failed_at_s(killed)[:10],
        "hosts_after": instance_hosts(name),
    }


def save_results(kind: str, results: dict[str, Any]) -> Path:
    """`results` as bench/results/<kind>-<time>.json; prints and returns the path."""
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{kind}-{datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nresults: {path}")
    return path
