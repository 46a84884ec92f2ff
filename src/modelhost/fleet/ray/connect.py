"""The gateway's connection to the Ray cluster, and what an instance's address says."""

from __future__ import annotations

import ipaddress
import logging
from typing import Any


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address: the node is this machine (as on the local
    cluster), so the instance's pid means something here."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def connect(address: str | None, namespace: str) -> Any:
    """The `ray` module, connected to the cluster at `address` in `namespace` (once per
    process)."""
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise RuntimeError("fleet 'ray' needs Ray: pip install 'modelhost[ray]'") from exc
    if not ray.is_initialized():
        ray.init(
            address=address,
            namespace=namespace,
            logging_level=logging.WARNING,
            log_to_driver=False,
        )
    return ray
