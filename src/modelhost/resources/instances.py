"""What the control plane knows of one instance, as a plain value (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

from modelhost.resources.status import InstanceStatus


@dataclass(frozen=True)
class InstanceState:
    """One instance owned by the fleet manager: whose it is (`owner`: the endpoint, or
    `transform-<job>`), its variant, its lifecycle status and where it listens."""

    instance_id: str
    owner: str
    variant_name: str
    status: InstanceStatus
    host: str
    port: int
    started_s: float
