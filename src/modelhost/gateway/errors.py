"""The one place that turns modelhost errors into HTTP answers.

botocore reads the error code from the body's `__type` for JSON 1.1 (control plane) and
from the `x-amzn-ErrorType` header for REST JSON (runtime); sending both works for both.
`Message` is capitalised so the modeled member is filled as well as `Error.Message`.
"""

from __future__ import annotations

import json
import logging

from modelhost.errors import InternalFailure, ModelhostError

log = logging.getLogger("modelhost.gateway")

JSON_11 = "application/x-amz-json-1.1"


def error_payload(
    exc: BaseException, request_id: str, content_type: str
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """(status, headers, body) for any exception; unknown ones become InternalFailure."""
    if not isinstance(exc, ModelhostError):
        log.error("unexpected error", exc_info=exc)
        exc = InternalFailure(f"Internal failure ({type(exc).__name__}); request id {request_id}.")
    body = {"__type": exc.code, "Message": exc.message, **exc.extra_fields()}
    data = json.dumps(body).encode()
    headers = [
        (b"content-type", content_type.encode()),
        (b"x-amzn-errortype", exc.code.encode()),
        (b"x-amzn-requestid", request_id.encode()),
        (b"content-length", str(len(data)).encode()),
    ]
    return exc.status, headers, data
