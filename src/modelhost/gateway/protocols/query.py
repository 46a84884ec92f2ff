"""The AWS query protocol: form-encoded `Action=...&Version=...` with members flattened as
`Name.member.N.Sub`, answered in XML (`{Op}Response/{Op}Result`), errors as
`ErrorResponse/Error/{Type,Code,Message}`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from botocore.model import OperationModel, Shape

from modelhost.gateway.protocols.shapes import to_epoch

CONTENT_TYPE = "text/xml"


def form(body: bytes) -> dict[str, str]:
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def _present(params: dict[str, str], prefix: str) -> bool:
    dotted = prefix + "."
    return prefix in params or any(k.startswith(dotted) for k in params)


def _scalar(shape: Shape, text: str) -> Any:
    kind = shape.type_name
    try:
        if kind in ("integer", "long"):
            return int(text)
        if kind in ("double", "float"):
            return float(text)
    except ValueError:
        return text  # the operation answers InvalidParameterValue for it
    if kind == "boolean":
        return text.lower() == "true"
    if kind == "timestamp":
        return to_epoch(text)
    return text


def _parse(shape: Shape, params: dict[str, str], prefix: str) -> Any:
    kind = shape.type_name
    if kind == "structure":
        out = {}
        for name, member in shape.members.items():
            where = member.serialization.get("name", name)
            sub = f"{prefix}.{where}" if prefix else where
            if _present(params, sub):
                out[name] = _parse(member, params, sub)
        return out
    if kind == "list":
        if params.get(prefix) == "":
            return []
        items, n = [], 1
        while _present(params, f"{prefix}.member.{n}"):
            items.append(_parse(shape.member, params, f"{prefix}.member.{n}"))
            n += 1
        return items
    if kind == "map":
        out_map, n = {}, 1
        while _present(params, f"{prefix}.entry.{n}"):
            key = params.get(f"{prefix}.entry.{n}.key", "")
            out_map[key] = _parse(shape.value, params, f"{prefix}.entry.{n}.value")
            n += 1
        return out_map
    return _scalar(shape, params.get(prefix, ""))


def parse(op: OperationModel, params: dict[str, str]) -> dict[str, Any]:
    if op.input_shape is None:
        return {}
    parsed: dict[str, Any] = _parse(op.input_shape, params, "")
    return parsed


def _iso(value: float) -> str:
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _xml(shape: Shape, value: Any) -> str:
    kind = shape.type_name
    if kind == "structure":
        parts = []
        for name, member in shape.members.items():
            if value.get(name) is None:
                continue
            tag = member.serialization.get("name", name)
            parts.append(f"<{tag}>{_xml(member, value[name])}</{tag}>")
        return "".join(parts)
    if kind == "list":
        return "".join(f"<member>{_xml(shape.member, v)}</member>" for v in value)
    if kind == "map":
        return "".join(
            f"<entry><key>{escape(str(k))}</key><value>{_xml(shape.value, v)}</value></entry>"
            for k, v in value.items()
        )
    if kind == "timestamp":
        return _iso(float(value))
    if kind == "boolean":
        return "true" if value else "false"
    if kind in ("double", "float"):
        return repr(float(value))
    return escape(str(value))


def serialize(op: OperationModel, result: dict[str, Any], namespace: str, request_id: str) -> bytes:
    name = op.name
    inner = ""
    if op.output_shape is not None:
        wrapper = op.output_shape.serialization.get("resultWrapper", f"{name}Result")
        inner = f"<{wrapper}>{_xml(op.output_shape, result)}</{wrapper}>"
    meta = f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>"
    return (f'<{name}Response xmlns="{namespace}">{inner}{meta}</{name}Response>').encode()


def error_body(code: str, message: str, namespace: str, request_id: str, sender: bool) -> bytes:
    kind = "Sender" if sender else "Receiver"
    return (
        f'<ErrorResponse xmlns="{namespace}"><Error><Type>{kind}</Type><Code>{escape(code)}'
        f"</Code><Message>{escape(message)}</Message></Error><RequestId>{request_id}</RequestId>"
        "</ErrorResponse>"
    ).encode()
