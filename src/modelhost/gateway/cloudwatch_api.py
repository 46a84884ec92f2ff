"""The CloudWatch API on the gateway's port, for boto3's `cloudwatch` client and the CLI.

Three wire forms of the same operations (botocore picks the first it supports from the
model's `protocols`): smithy rpc-v2-cbor (`POST /service/GraniteServiceVersion20100801/
operation/{Op}`), JSON 1.0 (`X-Amz-Target: GraniteServiceVersion20100801.{Op}`) and query
(form-encoded `Action={Op}` at `/`). The operations themselves live in
`telemetry/cloudwatch.py`; this module only decodes, dispatches and encodes, and renders
errors with CloudWatch's codes in each protocol. SigV4 signing name: `monitoring`.
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import unquote

from modelhost.errors import InvalidParameterValue, ModelhostError, UnknownOperation
from modelhost.gateway.asgi import Receive, Scope, Send, read_body, respond
from modelhost.gateway.errors import error_payload
from modelhost.gateway.protocols import cbor, query, shapes
from modelhost.telemetry.cloudwatch import CloudWatch

SERVICE = "cloudwatch"
TARGET = "GraniteServiceVersion20100801"
PATH_PREFIX = f"/service/{TARGET}/operation/"
XMLNS = "http://monitoring.amazonaws.com/doc/2010-08-01/"
JSON_10 = "application/x-amz-json-1.0"
MAX_BODY = 16 * 1024 * 1024


class Wire:
    CBOR = "cbor"
    JSON = "json"
    QUERY = "query"


def wire_of(scope: Scope) -> str | None:
    """Which CloudWatch wire form a request uses, or None when it is not CloudWatch."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    path: str = scope["path"]
    if path.startswith(PATH_PREFIX):
        return Wire.CBOR
    headers = dict(scope["headers"])
    target = headers.get(b"x-amz-target")
    if target is not None:
        return Wire.JSON if target.startswith(TARGET.encode() + b".") else None
    if path in ("/", "") and headers.get(b"content-type", b"").startswith(
        b"application/x-www-form-urlencoded"
    ):
        return Wire.QUERY
    return None


def operation_in_path(raw_path: str) -> str | None:
    if raw_path.startswith(PATH_PREFIX):
        return unquote(raw_path[len(PATH_PREFIX) :]) or None
    return None


def error_answer(
    wire: str, exc: BaseException, request_id: str
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """(status, headers, body) of an error in the request's own wire form."""
    status, _headers, json_body = error_payload(exc, request_id, JSON_10)
    code = exc.code if isinstance(exc, ModelhostError) else "InternalFailure"
    message = json.loads(json_body).get("Message", "")
    sender = status < 500
    base = [(b"x-amzn-requestid", request_id.encode())]
    if wire == Wire.QUERY:
        body = query.error_body(code, message, XMLNS, request_id, sender)
        return status, [*base, (b"content-type", query.CONTENT_TYPE.encode())], body
    shape = shapes.error_shape_names(SERVICE).get(code, code)
    compat = (b"x-amzn-query-error", f"{code};{'Sender' if sender else 'Receiver'}".encode())
    if wire == Wire.CBOR:
        return status, [*base, *cbor.HEADERS, compat], cbor.error_body(shape, message)
    body = json.dumps({"__type": shape, "message": message}).encode()
    return status, [*base, (b"content-type", JSON_10.encode()), compat], body


class CloudWatchAPI:
    """Decodes a request in its wire form, runs the operation, encodes the answer."""

    def __init__(self, cloudwatch: CloudWatch) -> None:
        self.cloudwatch = cloudwatch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = str(uuid.uuid4())
        wire = wire_of(scope) or Wire.QUERY
        try:
            body = await read_body(receive, MAX_BODY)
            status, headers, data = 200, *self.answer(wire, scope, body, request_id)
        except Exception as exc:
            status, headers, data = error_answer(wire, exc, request_id)
        headers = [*headers, (b"content-length", str(len(data)).encode())]
        await respond(send, status, headers, data)

    def answer(
        self, wire: str, scope: Scope, body: bytes, request_id: str
    ) -> tuple[list[tuple[bytes, bytes]], bytes]:
        base = [(b"x-amzn-requestid", request_id.encode())]
        if wire == Wire.QUERY:
            fields = query.form(body)
            op = self._operation(fields.get("Action", ""))
            result = self._run(op.name, query.parse(op, fields))
            data = query.serialize(op, result, XMLNS, request_id)
            return [*base, (b"content-type", query.CONTENT_TYPE.encode())], data
        if wire == Wire.CBOR:
            op = self._operation(operation_in_path(scope["path"]) or "")
            try:
                params = cbor.parse(op, body)
            except cbor.ProtocolError as exc:
                raise InvalidParameterValue(str(exc)) from exc
            result = self._run(op.name, params)
            return [*base, *cbor.HEADERS], cbor.serialize(op, result)
        target = dict(scope["headers"]).get(b"x-amz-target", b"").decode("latin-1")
        op = self._operation(target.partition(".")[2])
        try:
            raw = json.loads(body or b"{}")
        except ValueError as exc:
            raise InvalidParameterValue(f"The request body is not valid JSON: {exc}") from exc
        result = self._run(op.name, shapes.decode(op.input_shape, raw) or {})
        out = shapes.encode(op.output_shape, result, lambda t: t) or {}
        return [*base, (b"content-type", JSON_10.encode())], json.dumps(out).encode()

    def _operation(self, name: str) -> Any:
        op = shapes.operation(SERVICE, name) if name in self.cloudwatch.operations else None
        if op is None:
            raise UnknownOperation(
                f"Operation '{name}' is not supported by modelhost's CloudWatch API. "
                f"Supported: {', '.join(sorted(self.cloudwatch.operations))}"
            )
        return op

    def _run(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        return self.cloudwatch.operations[name](params)
