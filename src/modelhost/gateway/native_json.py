"""What modelhost's own REST routes (`/api/...`, Starlette) share: an error as its JSON
answer (gateway/errors.py's mapping) and a body that must be a JSON object."""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from modelhost.errors import ValidationException
from modelhost.gateway.errors import error_payload


def error_response(exc: Exception) -> Response:
    status, headers, body = error_payload(exc, str(uuid.uuid4()), "application/json")
    return Response(body, status, headers={k.decode(): v.decode() for k, v in headers})


async def json_object(request: Request) -> dict[str, Any]:
    """The request's body as a JSON object (an empty body is an empty one)."""
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError as exc:
        raise ValidationException(f"The body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ValidationException("The body must be a JSON object.")
    return body
