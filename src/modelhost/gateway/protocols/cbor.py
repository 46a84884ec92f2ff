"""Smithy rpc-v2-cbor: `POST /service/{Service}/operation/{Op}` with `smithy-protocol:
rpc-v2-cbor`, CBOR bodies (the cbor2 library), timestamps as tag 1 (epoch seconds).
Errors carry the error shape in `__type` and, for awsQueryCompatible services,
`x-amzn-query-error: Code;Sender` so botocore reports the query-era code."""

from __future__ import annotations

from typing import Any

import cbor2
from botocore.model import OperationModel

from modelhost.gateway.protocols.shapes import decode, encode

CONTENT_TYPE = "application/cbor"
HEADERS = [(b"smithy-protocol", b"rpc-v2-cbor"), (b"content-type", CONTENT_TYPE.encode())]


class ProtocolError(ValueError):
    """A body that does not decode."""


def parse(op: OperationModel, body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    try:
        value = cbor2.loads(body)
    except Exception as exc:  # cbor2 raises several decoder errors
        raise ProtocolError(f"The request body is not valid CBOR: {exc}") from exc
    if not isinstance(value, dict):
        raise ProtocolError("The request body must be a CBOR map.")
    params: dict[str, Any] = decode(op.input_shape, value) or {}
    return params


def serialize(op: OperationModel, result: dict[str, Any]) -> bytes:
    out = encode(op.output_shape, result, lambda t: cbor2.CBORTag(1, t)) or {}
    return bytes(cbor2.dumps(out))


def error_body(shape_name: str, message: str) -> bytes:
    return bytes(cbor2.dumps({"__type": shape_name, "message": message}))
