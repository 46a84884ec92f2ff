"""The gateway's edge guard: request limits for everyone, then SigV4 and the policy.

Runs before any API sees a request. Limits come first and never read more than they allow:
header bytes, then the declared Content-Length, then the body itself (streamed with a cap);
JSON bodies of the control plane and the native API are checked for nesting depth. With
authentication on, the signature is verified over the exact bytes received, the key looked
up, and `authorize` asked about the action and resource; the body is then replayed to the
API, so it is read once. A runtime call signed with `UNSIGNED-PAYLOAD` is verified without
buffering its body (the runtime still caps it). The dashboard's routes (`Surface.DASHBOARD`)
are the one place a session cookie counts, and only for its read-only data; with
authentication off they answer loopback clients only. `/metrics` also takes the
`metrics_token` setting as a bearer token, for Prometheus, which cannot sign.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from modelhost.errors import (
    AccessDeniedException,
    InvalidSignatureException,
    JsonTooDeep,
    RequestHeadersTooLarge,
)
from modelhost.gateway import cloudwatch_api
from modelhost.gateway.asgi import (
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    check_content_length,
    read_body,
    respond,
)
from modelhost.gateway.auth import sigv4
from modelhost.gateway.auth.actions import (
    Surface,
    Target,
    classify,
    control_resource,
    query_action,
)
from modelhost.gateway.auth.keys import KeyStore
from modelhost.gateway.auth.policy import Role, authorize
from modelhost.gateway.auth.session import Sessions, cookie_value, is_loopback
from modelhost.gateway.errors import JSON_11, error_payload
from modelhost.gateway.v2_api import v2_error
from modelhost.settings import Settings

_SIGNING_KEY_CACHE_MAX = 4096
PRINCIPAL_SCOPE_KEY = "modelhost.access_key_id"
METRICS_ACTION = "modelhost:ReadMetrics"


def check_json_depth(body: bytes, max_depth: int) -> Any:
    """Parse a JSON body, refusing nesting deeper than `max_depth` (a cheap bracket count
    skips the walk for ordinary bodies). Returns the parsed value, or None if not JSON."""
    if not body:
        return None
    try:
        value = json.loads(body)
    except RecursionError as exc:
        raise JsonTooDeep(f"The JSON body nests deeper than {max_depth} levels.") from exc
    except ValueError:
        return None  # the API answers its own SerializationException
    if body.count(b"[") + body.count(b"{") <= max_depth:
        return value
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > max_depth:
                raise JsonTooDeep(f"The JSON body nests deeper than {max_depth} levels.")
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)
    return value


def replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that yields the already-read body once, then defers to the real one."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


class Guard:
    """Wraps the gateway's dispatcher; see the module docstring for the order of checks."""

    def __init__(
        self,
        settings: Settings,
        keys: KeyStore | None,
        clock: Callable[[], float] = time.time,
        sessions: Sessions | None = None,
    ) -> None:
        self.settings = settings
        self.keys = keys  # None: authentication off
        self.clock = clock
        self.sessions = sessions
        self._signing_keys: dict[tuple[str, str, str, str], bytes] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
        if scope["type"] == "websocket" and self.keys is not None:
            # No WebSocket route is in the policy table: refuse before the handshake.
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        try:
            receive = await self.check(scope, receive)
        except Exception as exc:
            request_id = str(uuid.uuid4())
            wire = cloudwatch_api.wire_of(scope)
            if scope["path"].startswith("/v2"):  # V2 clients read {"error": ...}
                status, body = v2_error(exc)
                out_headers = [(b"content-type", b"application/json")]
                out_headers.append((b"content-length", str(len(body)).encode()))
            elif wire is not None:
                status, out_headers, body = cloudwatch_api.error_answer(wire, exc, request_id)
                out_headers.append((b"content-length", str(len(body)).encode()))
            else:
                headers = dict(scope["headers"])
                ctype = JSON_11 if b"x-amz-target" in headers else "application/json"
                status, out_headers, body = error_payload(exc, request_id, ctype)
            await respond(send, status, out_headers, body)
            return
        await app(scope, receive, send)

    async def check(self, scope: Scope, receive: Receive) -> Receive:
        """Raise for a refused request; return the `receive` the API should use."""
        settings = self.settings
        raw_headers: list[tuple[bytes, bytes]] = scope["headers"]
        header_bytes = sum(len(k) + len(v) + 4 for k, v in raw_headers)
        if header_bytes > settings.max_header_bytes or len(raw_headers) > settings.max_headers:
            raise RequestHeadersTooLarge(
                f"Request headers are {header_bytes} bytes in {len(raw_headers)} fields; the "
                f"limits are {settings.max_header_bytes} bytes and {settings.max_headers} fields."
            )
        headers = dict(raw_headers)
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        raw_path = raw_path.split("?", 1)[0]
        target_header = headers.get(b"x-amz-target")
        target = classify(
            scope["method"],
            raw_path,
            target_header.decode("latin-1") if target_header is not None else None,
            settings.metrics_public,
            form=headers.get(b"content-type", b"").startswith(b"application/x-www-form-urlencoded"),
        )
        if target.surface is Surface.PUBLIC:
            return receive
        if target.action == METRICS_ACTION and self.keys is not None:
            authorization = headers.get(b"authorization", b"")
            if authorization[:7].lower() == b"bearer ":
                self._check_metrics_token(authorization[7:].strip())
                return receive
        if target.surface is Surface.DASHBOARD:
            check_content_length(headers, settings.max_api_body_bytes)
            if self.keys is None or target.action is None or b"authorization" not in headers:
                self._dashboard(scope, target)
                if scope["method"] != "POST":
                    return receive
                # Sign-in and sign-out forms: read under the cap, even when chunked.
                return replay(await read_body(receive, settings.max_api_body_bytes), receive)
        limit = (
            settings.max_payload_bytes
            if target.surface is Surface.RUNTIME
            else settings.max_api_body_bytes
        )
        check_content_length(headers, limit)
        if self.keys is None:
            if target.surface is Surface.RUNTIME:
                return receive
            body = await read_body(receive, limit)
            check_json_depth(body, settings.max_json_depth)
            return replay(body, receive)
        return await self._authenticate(scope, receive, raw_path, target, limit)

    def _check_metrics_token(self, presented: bytes) -> None:
        """A Prometheus scraper's bearer token (it cannot sign SigV4), compared in constant
        time; good for /metrics only."""
        token = self.settings.metrics_token
        if token is None:
            raise AccessDeniedException(
                "This server takes no bearer token for /metrics (metrics_token is unset): "
                "sign the request with SigV4."
            )
        if not hmac.compare_digest(presented, token.get_secret_value().encode()):
            raise AccessDeniedException("The bearer token for /metrics is not valid.")

    def _dashboard(self, scope: Scope, target: Target) -> None:
        """With authentication off, loopback clients only. With it on, the page, its assets
        and the sign-in form are open (the page asks to sign in); the read-only data routes
        take a session cookie (or, handled by the caller, a signature)."""
        if self.keys is None:
            if not is_loopback(scope.get("client")):
                raise AccessDeniedException(
                    "Authentication is off: the dashboard answers clients on this machine only."
                )
            return
        if target.action is None:
            return
        key_id = None
        if self.sessions is not None:
            key_id = self.sessions.verify(cookie_value(scope["headers"]))
        found = self.keys.active(key_id) if key_id is not None else None
        if found is None:
            raise AccessDeniedException("Sign in to the dashboard at /dashboard first.")
        key = found[0]
        if not authorize(Role(key.role), target.action, target.resource, key.endpoints):
            raise AccessDeniedException(
                f"User: {key.access_key_id} (role {key.role}) is not authorized to perform: "
                f"{target.action}"
            )
        scope[PRINCIPAL_SCOPE_KEY] = key.access_key_id

    def _signing_key(self, secret: str, c: sigv4.Credential) -> bytes:
        """SigV4's derived key, cached per key, day, region and service."""
        cache_key = (c.access_key_id, c.date, c.region, c.service)
        derived = self._signing_keys.get(cache_key)
        if derived is None:
            if len(self._signing_keys) >= _SIGNING_KEY_CACHE_MAX:
                self._signing_keys.clear()
            derived = sigv4.signing_key(secret, c.date, c.region, c.service)
            self._signing_keys[cache_key] = derived
        return derived

    async def _authenticate(
        self, scope: Scope, receive: Receive, raw_path: str, target: Target, limit: int
    ) -> Receive:
        assert self.keys is not None
        request = sigv4.SignedRequest(
            method=scope["method"],
            raw_path=raw_path,
            raw_query=scope.get("query_string", b"").decode("latin-1"),
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]],
            scheme=scope.get("scheme", "http"),
        )
        cred = sigv4.parse(request)
        if cred.service != target.service:
            raise InvalidSignatureException(
                f"Credential should be scoped to correct service: '{target.service}'."
            )
        sigv4.check_time(cred, self.clock(), self.settings.auth_clock_skew_s)
        found = self.keys.active(cred.access_key_id)
        if found is None:
            raise sigv4.unknown_key(cred)
        key, secret = found

        def key_for(c: sigv4.Credential) -> bytes:
            return self._signing_key(secret, c)

        streamed = target.surface is Surface.RUNTIME and cred.payload_hash == sigv4.UNSIGNED_PAYLOAD
        body = b""
        if streamed:
            sigv4.verify(request, cred, sigv4.UNSIGNED_PAYLOAD, key_for)
        else:
            body = await read_body(receive, limit)
            computed = hashlib.sha256(body).hexdigest()
            declared = cred.payload_hash
            if declared is not None and declared not in (computed, sigv4.UNSIGNED_PAYLOAD):
                raise InvalidSignatureException(
                    "The provided 'x-amz-content-sha256' header does not match what was computed."
                )
            sigv4.verify(request, cred, declared or computed, key_for)
        query_action(target, body)
        resource = target.resource
        if target.surface is not Surface.RUNTIME:
            params = check_json_depth(body, self.settings.max_json_depth)
            if target.surface is Surface.CONTROL:
                resource = control_resource(params)
        if target.action is None or not authorize(
            Role(key.role), target.action, resource, key.endpoints
        ):
            what = target.action or f"{scope['method']} {raw_path}"
            raise AccessDeniedException(
                f"User: {key.access_key_id} (role {key.role}, endpoints '{key.endpoints}') is "
                f"not authorized to perform: {what} on resource: {resource or '*'}"
            )
        scope[PRINCIPAL_SCOPE_KEY] = key.access_key_id
        return receive if streamed else replay(body, receive)
