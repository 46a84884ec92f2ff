"""The rare paths of the instance's own HTTP server, through the instance's ASGI app.

`/execution-parameters`, the multi-model `/models` API, 404s, 405s and the answers of
`/invocations` while the model loads or after it failed are written once, by the ASGI app
(`container/app.py`, `container/multimodel.py`); the server hands them a complete request
(the body is already read) as uvicorn would: one `http.request` message, then
`http.disconnect` when the client goes away. A response with `more_body` is sent chunked
unless it named its length; a HEAD response carries no body. ASGI's trailers extension is
supported (`trailers: True` in the start, then `http.response.trailers`): a chunked answer
ends with the trailer fields (container/stream_error.py), any other drops them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from urllib.parse import unquote

from modelhost.container.asgi import TEXT, Message, Receive, Scope, Send
from modelhost.container.http_connection import HttpConnection, Request
from modelhost.container.http_types import status_line
from modelhost.container.invoke import Reply, send_reply
from modelhost.container.streams import StreamSignal

log = logging.getLogger("modelhost.container")


def request_scope(connection: HttpConnection, request: Request) -> Scope:
    """The ASGI HTTP scope of `request`, as uvicorn builds it."""
    raw_path, _, query = request.url.partition(b"?")
    if not raw_path.startswith(b"/"):  # absolute form: http://host/path
        import httptools

        parsed = httptools.parse_url(request.url)
        raw_path, query = parsed.path or b"/", parsed.query or b""
    transport = connection.transport
    client = transport.get_extra_info("peername") if transport is not None else None
    server = transport.get_extra_info("sockname") if transport is not None else None
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": request.version,
        "server": tuple(server) if isinstance(server, tuple) else None,
        "client": tuple(client) if isinstance(client, tuple) and client else None,
        "scheme": "http",
        "method": request.method.decode("ascii"),
        "root_path": "",
        "path": unquote(raw_path.decode("latin-1")),
        "raw_path": raw_path,
        "query_string": query,
        "headers": request.headers,
        "state": {},
        "extensions": {"http.response.trailers": {}},
    }


class _Response:
    """Collects the app's `send` messages and writes them to the connection."""

    def __init__(self, connection: HttpConnection, request: Request) -> None:
        self.connection = connection
        self.head_only = request.method == b"HEAD"
        self.keep_alive = request.keep_alive
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunked = False
        self.head_sent = False
        self.trailers = False  # the app sends `http.response.trailers` after the body
        self.trailer_fields: list[tuple[bytes, bytes]] = []
        self.body_done = False
        self.complete = False

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self.status is not None:
                raise RuntimeError("the response has started already")
            self.status = int(message["status"])
            self.headers = [(bytes(k).lower(), bytes(v)) for k, v in message.get("headers", ())]
            self.trailers = bool(message.get("trailers", False))
        elif kind == "http.response.body":
            if self.status is None or self.body_done:
                raise RuntimeError("a body without a start, or after the end")
            self._body(bytes(message.get("body", b"")), bool(message.get("more_body", False)))
        elif kind == "http.response.trailers":
            if not self.trailers or not self.body_done:
                raise RuntimeError("trailers not announced, or before the body's end")
            fields = [(bytes(k).lower(), bytes(v)) for k, v in message.get("headers", ())]
            self._trailers(fields, bool(message.get("more_trailers", False)))

    def _body(self, body: bytes, more: bool) -> None:
        connection = self.connection
        transport = connection.transport
        if transport is None or connection.closed:
            self.body_done = self.complete = not more
            return
        if not self.head_sent:
            head = [status_line(self.status or 500), connection.server.date_header]
            named = any(name == b"content-length" for name, _ in self.headers)
            if not more:
                if not named:
                    self.headers.append((b"content-length", str(len(body)).encode()))
                for name, value in self.headers:
                    head += (name, b": ", value, b"\r\n")
                self.body_done = self.complete = True  # not chunked: trailers are dropped
                connection.send_head(head, b"" if self.head_only else body, self.keep_alive)
                return
            if not named:
                self.chunked = True
                self.headers.append((b"transfer-encoding", b"chunked"))
            for name, value in self.headers:
                head += (name, b": ", value, b"\r\n")
            head.append(b"\r\n")
            transport.write(b"".join(head))
            self.head_sent = True
        if body and not self.head_only:
            transport.write(b"%x\r\n%b\r\n" % (len(body), body) if self.chunked else body)
        if not more:
            self.body_done = True
            if not (self.trailers and self.chunked):
                self._end(b"")

    def _trailers(self, fields: list[tuple[bytes, bytes]], more: bool) -> None:
        self.trailer_fields += fields
        if not more and not self.complete:
            block = [b"%b: %b\r\n" % field for field in self.trailer_fields]
            self._end(b"".join(block))

    def _end(self, trailer: bytes) -> None:
        """The last chunk (with `trailer`'s fields) of a chunked answer; the answer is whole."""
        self.complete = True
        connection = self.connection
        if connection.transport is None or connection.closed:
            return
        if self.chunked and not self.head_only:
            connection.transport.write(b"0\r\n" + trailer + b"\r\n")
        if not self.keep_alive:
            connection.close()


async def run_asgi(connection: HttpConnection, request: Request) -> None:
    """Answer `request` with the instance's ASGI app."""
    scope = request_scope(connection, request)
    await _answer(connection, request, lambda receive, send: connection.app(scope, receive, send))


async def stream_reply(connection: HttpConnection, request: Request, reply: Reply) -> None:
    """Write a streamed invocation's `reply` (`Reply.rest`) chunked, as the ASGI app would:
    the client leaving stops the stream, a failure mid-stream ends it with its trailer."""
    trailer = StreamSignal.TRAILER
    await _answer(
        connection, request, lambda receive, send: send_reply(send, receive, reply, trailer)
    )


async def _answer(
    connection: HttpConnection,
    request: Request,
    call: Callable[[Receive, Send], Awaitable[None]],
) -> None:
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": request.body, "more_body": False}
        await connection.disconnected
        return {"type": "http.disconnect"}

    response = _Response(connection, request)
    try:
        await call(receive, response.send)
    except Exception:
        log.exception("request %s %r failed", request.method.decode(), request.url)
        if response.status is None:
            connection.write(500, b"Internal Server Error", TEXT, None, False)
        else:
            connection.abort()
        return
    if not response.complete:
        # The app returned without finishing its answer: the client cannot tell where it
        # ends, so the connection goes.
        if response.status is None:
            connection.write(500, b"Internal Server Error", TEXT, None, False)
        else:
            connection.abort()
