"""An endpoint's route as a JSON document, so the leader gateway can hand its routing
snapshots to the others (store/coordination.py) and they route to the same instances.

Instances become `RemoteTarget`s on the reading side: where they listen, what they serve
and the models last known loaded; each gateway counts its own outstanding requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelhost.routing.table import (
    Address,
    EndpointRoute,
    ShadowRoute,
    Target,
    TargetMode,
    VariantRoute,
)


@dataclass(eq=False)
class RemoteTarget:
    """An instance another gateway runs, as a routing `Target`."""

    instance_id: str
    address: Address
    mode: TargetMode
    models: set[str] = field(default_factory=set)
    outstanding: int = 0
    # The instance's log file on the leader's machine: names its LogStreamArn in errors.
    log_path: Path | None = None


def _target_doc(t: Target) -> dict[str, Any]:
    host, port = t.address
    return {
        "InstanceId": t.instance_id,
        "Host": host,
        "Port": port,
        "Mode": str(t.mode),
        "Models": sorted(t.models),
        "LogPath": str(path) if (path := getattr(t, "log_path", None)) else None,
    }


def _target(doc: dict[str, Any]) -> RemoteTarget:
    log_path = doc.get("LogPath")
    return RemoteTarget(
        doc["InstanceId"], (doc["Host"], int(doc["Port"])), TargetMode(doc["Mode"]),
        set(doc.get("Models", ())), 0, Path(log_path) if log_path else None,
    )  # fmt: skip


def route_to_doc(route: EndpointRoute) -> dict[str, Any]:
    return {
        "Name": route.name,
        "UnavailableReason": route.unavailable_reason,
        "Variants": [
            {
                "Name": v.name,
                "Weight": v.weight,
                "ModelDataPrefix": v.model_data_prefix,
                "Instances": [_target_doc(t) for t in v.instances],
            }
            for v in route.variants
        ],
        "Shadows": [
            {"Name": s.name, "Share": s.share, "Instances": [_target_doc(t) for t in s.instances]}
            for s in route.shadows
        ],
    }


def route_from_doc(doc: dict[str, Any]) -> EndpointRoute:
    variants = tuple(
        VariantRoute(
            v["Name"],
            float(v["Weight"]),
            tuple(_target(t) for t in v["Instances"]),
            v.get("ModelDataPrefix"),
        )
        for v in doc["Variants"]
    )
    shadows = tuple(
        ShadowRoute(s["Name"], float(s["Share"]), tuple(_target(t) for t in s["Instances"]))
        for s in doc.get("Shadows", ())
    )
    return EndpointRoute(doc["Name"], variants, doc.get("UnavailableReason"), shadows)
