"""A follower hands a serverless endpoint's invocations to the leader gateway.

A serverless variant's instances start on demand in the leader's serverless pool: they
are the leader's children (local provider) and its MaxConcurrency is counted there, once
for all gateways. A follower (gateway/scaleout.py `leader_serving`) therefore sends the
request on as it came: same method, path, query, headers (Host included, so the SigV4
signature verifies again on the leader, which shares the keys) and body; the answer comes
back unchanged. The leader records the metrics and captures the data.
"""

from __future__ import annotations

import uuid

import aiohttp
from multidict import CIMultiDict

from modelhost.errors import ServiceUnavailable
from modelhost.gateway.asgi import Receive, Scope, Send, read_body, respond
from modelhost.gateway.errors import error_payload

# Hop-by-hop headers, and those the ASGI server writes itself.
_REQUEST_DROP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "upgrade"})
_RESPONSE_DROP = frozenset({*_REQUEST_DROP, "date", "server"})


class LeaderForwarder:
    """Sends requests on to another gateway; one keep-alive session for all of them."""

    def __init__(self, timeout_s: float, max_body_bytes: int) -> None:
        self.timeout_s = timeout_s
        self.max_body_bytes = max_body_bytes
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, leader_url: str, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            status, headers, body = await self._forward(leader_url, scope, receive)
        except Exception as exc:
            status, headers, body = self._error(exc, leader_url)
        await respond(send, status, headers, body)

    async def _forward(
        self, leader_url: str, scope: Scope, receive: Receive
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        body = await read_body(receive, self.max_body_bytes)
        raw = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        url = leader_url.rstrip("/") + raw.decode("latin-1")
        if query:
            url += "?" + query.decode("latin-1")
        headers: CIMultiDict[str] = CIMultiDict(
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in scope["headers"]
            if k.decode("latin-1").lower() not in _REQUEST_DROP
        )
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            )
        async with self._session.request(
            scope["method"], url, data=body, headers=headers, allow_redirects=False
        ) as resp:
            out = await resp.read()
            back = [
                (k.encode("latin-1"), v.encode("latin-1"))
                for k, v in resp.headers.items()
                if k.lower() not in _RESPONSE_DROP
            ]
            return resp.status, back, out

    @staticmethod
    def _error(exc: Exception, leader_url: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        if isinstance(exc, aiohttp.ClientError | TimeoutError):
            exc = ServiceUnavailable(
                f"The leader gateway at {leader_url}, which runs this serverless endpoint's "
                f"instances, did not answer ({type(exc).__name__}); retry."
            )
        return error_payload(exc, str(uuid.uuid4()), "application/json")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
