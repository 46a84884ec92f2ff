"""A follower hands a serverless endpoint's invocations to the leader gateway.

A serverless variant's instances start on demand in the leader's serverless pool: they
are the leader's children (local provider) and its MaxConcurrency is counted there, once
for all gateways. A follower (gateway/scaleout.py `leader_serving`) therefore sends the
request on as it came: same method, path, query, headers (Host included, so the SigV4
signature verifies again on the leader, which shares the keys) and body. The leader records
the metrics and captures the data.

The answer is relayed as it arrives, not read whole first: an
InvokeEndpointWithResponseStream answer's event-stream messages reach the client as the
leader sends them. Each read of the leader's answer waits at most `timeout_s`; the leader
bounds the wait for each part of a stream and the whole stream itself (its error event is
relayed as any other), so the follower puts no limit on the whole answer. A client
that goes away closes the connection to the leader, which ends the stream there. When the
leader's answer breaks off after it started, the status cannot change any more: an event
stream cut between two messages ends with an `InternalStreamFailure` event, anything else
is left unfinished (the client's connection is closed without its end).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

import aiohttp
from multidict import CIMultiDict

from modelhost.errors import InternalStreamFailure, ServiceUnavailable
from modelhost.gateway import eventstream
from modelhost.gateway.asgi import Receive, Scope, Send, read_body, respond
from modelhost.gateway.errors import error_payload

log = logging.getLogger("modelhost.gateway")

# Hop-by-hop headers, and those the ASGI server writes itself.
_REQUEST_DROP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "upgrade"})
_RESPONSE_DROP = frozenset({*_REQUEST_DROP, "date", "server"})
_EVENT_STREAM = eventstream.CONTENT_TYPE.decode()


class LeaderForwarder:
    """Sends requests on to another gateway; one keep-alive session for all of them."""

    def __init__(self, timeout_s: float, max_body_bytes: int) -> None:
        self.timeout_s = timeout_s
        self.max_body_bytes = max_body_bytes
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, leader_url: str, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            resp = await self._forward(leader_url, scope, receive)
        except Exception as exc:
            status, headers, body = self._error(exc, leader_url)
            await respond(send, status, headers, body)
            return
        finished = False
        try:
            finished = await self._relay(resp, receive, send)
        finally:
            # A whole answer leaves the connection reusable; a cut one must not be reused.
            if finished:
                resp.release()
            else:
                resp.close()

    async def _forward(
        self, leader_url: str, scope: Scope, receive: Receive
    ) -> aiohttp.ClientResponse:
        """The leader's answer, once its head has arrived."""
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
                # Per read, not in total: a stream may last longer than any one wait.
                timeout=aiohttp.ClientTimeout(total=None, sock_read=self.timeout_s),
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            )
        return await self._session.request(
            scope["method"], url, data=body, headers=headers, allow_redirects=False
        )

    async def _relay(self, resp: aiohttp.ClientResponse, receive: Receive, send: Send) -> bool:
        """Send the leader's answer on as it arrives; True when it was sent whole."""
        back = [
            (k.lower().encode("latin-1"), v.encode("latin-1"))
            for k, v in resp.headers.items()
            if k.lower() not in _RESPONSE_DROP
        ]
        await send({"type": "http.response.start", "status": resp.status, "headers": back})
        frames = _Frames() if resp.content_type == _EVENT_STREAM else None
        gone = asyncio.ensure_future(_on_disconnect(receive, resp.close))
        try:
            async for data in resp.content.iter_any():
                if frames is not None:
                    frames.feed(data)
                await send({"type": "http.response.body", "body": data, "more_body": True})
        except (aiohttp.ClientError, TimeoutError) as exc:
            if gone.done():
                return False  # the client went away: nobody to tell
            log.warning("the leader's answer broke off: %s", exc)
            if frames is None or not frames.at_boundary:
                return False  # unfinished: the server closes the client's connection
            failure = InternalStreamFailure(
                f"The leader gateway's stream broke off ({type(exc).__name__}); retry."
            )
            last = eventstream.exception(failure.code, {"Message": failure.message})
            await send({"type": "http.response.body", "body": last, "more_body": False})
            return False
        finally:
            gone.cancel()
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return True

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


class _Frames:
    """Where an event stream's messages begin and end, from each message's leading total
    length (gateway/eventstream.py), so a relay that breaks can tell whether it stopped
    between two messages."""

    __slots__ = ("_left", "_length")

    def __init__(self) -> None:
        self._length = b""  # the next message's first bytes, while fewer than 4 arrived
        self._left = 0  # bytes of the current message still to come

    def feed(self, data: bytes) -> None:
        view, i = memoryview(data), 0
        while i < len(view):
            if self._left:
                step = min(self._left, len(view) - i)
                self._left -= step
                i += step
                continue
            need = 4 - len(self._length)
            self._length += bytes(view[i : i + need])
            i += need
            if len(self._length) == 4:
                self._left = int.from_bytes(self._length, "big") - 4
                self._length = b""

    @property
    def at_boundary(self) -> bool:
        return self._left == 0 and not self._length


async def _on_disconnect(receive: Receive, close: Callable[[], None]) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    close()
