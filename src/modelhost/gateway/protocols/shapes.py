"""Walking botocore's service model: requests in (to plain values, timestamps as epoch
seconds), responses out (only modeled members, timestamps in the protocol's form)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore.loaders import Loader
from botocore.model import OperationModel, ServiceModel, Shape


@functools.cache
def service(name: str) -> ServiceModel:
    return ServiceModel(Loader().load_service_model(name, "service-2"), name)


def operation(service_name: str, name: str) -> OperationModel | None:
    model = service(service_name)
    return model.operation_model(name) if name in model.operation_names else None


def error_shape_names(service_name: str) -> dict[str, str]:
    """awsQueryError code → error shape name (InvalidParameterValue →
    InvalidParameterValueException), which rpc-v2-cbor and JSON carry in `__type`."""
    out = {}
    model = service(service_name)
    for shape_name in model.shape_names:
        shape = model.shape_for(shape_name)
        code = shape.metadata.get("error", {}).get("code")
        if shape.metadata.get("exception") and code:
            out[code] = shape_name
    return out


def to_epoch(value: Any) -> float:
    """A timestamp in any form a client sends: datetime, epoch number or ISO 8601."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def decode(shape: Shape | None, value: Any) -> Any:
    """A parsed request value with timestamps as epoch seconds (CBOR/JSON bodies)."""
    if shape is None or value is None:
        return value
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        members = shape.members
        return {k: decode(members.get(k), v) for k, v in value.items()}
    if kind == "list" and isinstance(value, list):
        return [decode(shape.member, v) for v in value]
    if kind == "map" and isinstance(value, dict):
        return {k: decode(shape.value, v) for k, v in value.items()}
    if kind == "timestamp":
        return to_epoch(value)
    return value


def encode(shape: Shape | None, value: Any, stamp: Callable[[float], Any]) -> Any:
    """A response value with only modeled members; `stamp` renders timestamps."""
    if shape is None or value is None:
        return None
    kind = shape.type_name
    if kind == "structure":
        out = {}
        for name, member in shape.members.items():
            if name in value and value[name] is not None:
                out[name] = encode(member, value[name], stamp)
        return out
    if kind == "list":
        return [encode(shape.member, v, stamp) for v in value]
    if kind == "map":
        return {k: encode(shape.value, v, stamp) for k, v in value.items()}
    if kind == "timestamp":
        return stamp(float(value))
    if kind in ("double", "float"):
        return float(value)
    if kind in ("integer", "long"):
        return int(value)
    return value
