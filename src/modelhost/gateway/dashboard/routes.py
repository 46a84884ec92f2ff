"""The dashboard's HTTP routes: the page, its bundled assets, sign-in and sign-out, the
one data call a refresh makes (`GET /api/dashboard/snapshot?range=1h&endpoints=a,b`), and
the cost-advice form's call (`GET /api/dashboard/advise?...`, `GET /api/advise`'s answer,
reachable with the sign-in cookie).

Who may reach them is the guard's business (`auth/guard.py`); here the page only decides
between the dashboard and the sign-in form, and the data call limits the endpoints to the
key's endpoint patterns.
"""

from __future__ import annotations

import asyncio
import html
import uuid
from pathlib import Path
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from modelhost.errors import ValidationException
from modelhost.gateway.auth.guard import PRINCIPAL_SCOPE_KEY
from modelhost.gateway.auth.keys import KeyStore
from modelhost.gateway.auth.policy import endpoint_allowed
from modelhost.gateway.auth.session import Sessions, cookie_value
from modelhost.gateway.dashboard.data import DashboardData
from modelhost.gateway.errors import error_payload
from modelhost.gateway.native_api import advice

STATIC = Path(__file__).parent / "static"
MAX_SIGN_IN_BYTES = 4096
_NO_STORE = {"Cache-Control": "no-store"}


def _error(exc: Exception) -> Response:
    status, headers, body = error_payload(exc, str(uuid.uuid4()), "application/json")
    return Response(body, status, headers={k.decode(): v.decode() for k, v in headers})


class DashboardRoutes:
    """`keys` and `sessions` are None with authentication off (loopback only, no sign-in)."""

    def __init__(
        self, data: DashboardData, keys: KeyStore | None, sessions: Sessions | None
    ) -> None:
        self.data = data
        self.keys = keys
        self.sessions = sessions

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/dashboard", self.page, methods=["GET"]),
            Route("/dashboard/sign-in", self.sign_in, methods=["POST"]),
            Route("/dashboard/sign-out", self.sign_out, methods=["POST"]),
            Mount("/dashboard/static", app=StaticFiles(directory=STATIC), name="dashboard"),
            Route("/api/dashboard/snapshot", self.snapshot, methods=["GET"]),
            Route("/api/dashboard/advise", self.advise, methods=["GET"]),
        ]

    def _signed_in(self, request: Request) -> str | None:
        if self.sessions is None or self.keys is None:
            return None
        key_id = self.sessions.verify(cookie_value(request.scope["headers"]))
        return key_id if key_id is not None and self.keys.active(key_id) else None

    async def page(self, request: Request) -> Response:
        if self.keys is not None and self._signed_in(request) is None:
            return _sign_in_page("")
        text = (STATIC / "index.html").read_text()
        auth = "on" if self.keys is not None else "off"
        return HTMLResponse(text.replace("{{auth}}", auth), headers=_NO_STORE)

    async def sign_in(self, request: Request) -> Response:
        if self.keys is None or self.sessions is None:
            return RedirectResponse("/dashboard", status_code=303)
        body = await request.body()
        form = parse_qs(body[:MAX_SIGN_IN_BYTES].decode("utf-8", "replace"))
        key_id = form.get("access_key_id", [""])[0]
        secret = form.get("secret_access_key", [""])[0]
        value = self.sessions.sign_in(self.keys, key_id, secret)
        if value is None:
            return _sign_in_page("Unknown access key id, or a wrong secret.", status=401)
        response = RedirectResponse("/dashboard", status_code=303)
        secure = request.url.scheme == "https"
        response.headers.append("Set-Cookie", self.sessions.set_cookie(value, secure))
        return response

    async def sign_out(self, _request: Request) -> Response:
        response = RedirectResponse("/dashboard", status_code=303)
        response.headers.append("Set-Cookie", Sessions.clear_cookie())
        return response

    async def snapshot(self, request: Request) -> Response:
        try:
            patterns = self._patterns(request)
            range_label = request.query_params.get("range", "1h")
            detail = [n for n in request.query_params.get("endpoints", "").split(",") if n]
            if len(detail) > 2:
                raise ValidationException(
                    "1 validation error detected: Value at 'endpoints' failed to satisfy "
                    "constraint: at most 2 endpoint names."
                )

            def allowed(name: str) -> bool:
                return patterns is None or endpoint_allowed(patterns, name)

            state = self.data.state(range_label, detail, allowed)
            doc = await asyncio.to_thread(self.data.metrics, state)
            doc["Auth"] = self.keys is not None
            doc["SignedInAs"] = request.scope.get(PRINCIPAL_SCOPE_KEY)
            return JSONResponse(doc, headers=_NO_STORE)
        except Exception as exc:
            return _error(exc)

    async def advise(self, request: Request) -> Response:
        try:
            doc = await asyncio.to_thread(advice, dict(request.query_params))
            return JSONResponse(doc, headers=_NO_STORE)
        except Exception as exc:
            return _error(exc)

    def _patterns(self, request: Request) -> str | None:
        """The signed-in key's endpoint patterns; None (everything) with auth off."""
        if self.keys is None:
            return None
        key_id = request.scope.get(PRINCIPAL_SCOPE_KEY)
        found = self.keys.active(key_id) if isinstance(key_id, str) else None
        return found[0].endpoints if found is not None else ""


def _sign_in_page(message: str, status: int = 200) -> Response:
    text = (STATIC / "sign-in.html").read_text()
    error = f'<p class="error" role="alert">{html.escape(message)}</p>' if message else ""
    return HTMLResponse(text.replace("{{error}}", error), status, headers=_NO_STORE)
