"""An endpoint's route as a JSON document, so the leader gateway can hand its routing
snapshots to the others (store/coordination.py) and they route to the same instances.

Instances become `RemoteTarget`s on the reading side: where they listen, what they serve
and the models last known loaded; each gateway counts its own outstanding requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from modelhost.resources.capture import CaptureConfig
from modelhost.routing.table import (
    Address,
    EndpointRoute,
    ShadowRoute,
    Target,
    TargetMode,
    TcpAddress,
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
    # Other gateways reach the leader's instances by TCP: a Unix socket's path names a
    # file on the leader's machine (fleet/sockets.py).
    host, port = cast(TcpAddress, getattr(t, "tcp_address", t.address))
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
        doc["InstanceId"], TcpAddress(doc["Host"], int(doc["Port"])), TargetMode(doc["Mode"]),
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
                # Its instances start on demand, in the leader's serverless pool.
                "Serverless": v.serverless,
            }
            for v in route.variants
        ],
        "Shadows": [
            {"Name": s.name, "Share": s.share, "Instances": [_target_doc(t) for t in s.instances]}
            for s in route.shadows
        ],
        # Followers capture too (each gateway writes what it served).
        "Capture": _capture_doc(route.capture),
    }


def route_from_doc(doc: dict[str, Any]) -> EndpointRoute:
    variants = tuple(
        VariantRoute(
            v["Name"],
            float(v["Weight"]),
            tuple(_target(t) for t in v["Instances"]),
            v.get("ModelDataPrefix"),
            bool(v.get("Serverless", False)),
        )
        for v in doc["Variants"]
    )
    shadows = tuple(
        ShadowRoute(s["Name"], float(s["Share"]), tuple(_target(t) for t in s["Instances"]))
        for s in doc.get("Shadows", ())
    )
    capture = _capture(doc.get("Capture"))
    return EndpointRoute(doc["Name"], variants, doc.get("UnavailableReason"), shadows, capture)


def _capture_doc(c: CaptureConfig | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {
        "SamplingPercentage": c.sampling_percentage,
        "Destination": c.destination,
        "Input": c.capture_input,
        "Output": c.capture_output,
        "CsvTypes": sorted(c.csv_types),
        "JsonTypes": sorted(c.json_types),
        "KmsKeyId": c.kms_key_id,
        "Enabled": c.enabled,
    }


def _capture(doc: dict[str, Any] | None) -> CaptureConfig | None:
    if not doc:
        return None
    return CaptureConfig(
        int(doc["SamplingPercentage"]), doc["Destination"], bool(doc["Input"]),
        bool(doc["Output"]), frozenset(doc["CsvTypes"]), frozenset(doc["JsonTypes"]),
        doc.get("KmsKeyId", ""), bool(doc.get("Enabled", True)),
    )  # fmt: skip
