"""Native routes for access keys (admin only, enforced by the policy):
`POST /api/keys` {"Role", "Endpoints"} → the new key with its secret (shown once),
`GET /api/keys` → keys without secrets, `DELETE /api/keys/{AccessKeyId}` → revoke."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from modelhost.errors import NotFound, ValidationException
from modelhost.gateway.auth.keys import KeyStore
from modelhost.gateway.native_json import error_response


class KeysAPI:
    """Create, list and revoke access keys over HTTP; the CLI's `modelhost keys` uses it."""

    def __init__(self, keys: KeyStore) -> None:
        self.keys = keys

    def routes(self) -> list[Route]:
        return [
            Route("/api/keys", self.collection, methods=["GET", "POST"]),
            Route("/api/keys/{name}", self.revoke, methods=["DELETE"]),
        ]

    async def collection(self, request: Request) -> Response:
        try:
            if request.method == "GET":
                return JSONResponse({"AccessKeys": [k.describe() for k in self.keys.list()]})
            body: Any = json.loads(await request.body() or b"{}")
            if not isinstance(body, dict):
                raise ValidationException("The body must be a JSON object.")
            role = body.get("Role")
            endpoints = body.get("Endpoints", "*")
            if not isinstance(role, str) or not isinstance(endpoints, str):
                raise ValidationException("Role and Endpoints must be strings.")
            key_id, secret = self.keys.create(role, endpoints)
            return JSONResponse(
                {
                    "AccessKeyId": key_id,
                    "SecretAccessKey": secret,
                    "Role": role,
                    "Endpoints": endpoints,
                }
            )
        except ValueError as exc:
            return error_response(ValidationException(f"The body is not valid JSON: {exc}"))
        except Exception as exc:
            return error_response(exc)

    async def revoke(self, request: Request) -> Response:
        key_id = request.path_params["name"]
        try:
            key = self.keys.revoke(key_id)
            if key is None:
                raise NotFound(f"Access key {key_id} does not exist.")
            return JSONResponse(key.describe())
        except Exception as exc:
            return error_response(exc)
