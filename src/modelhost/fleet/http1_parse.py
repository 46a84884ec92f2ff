"""What the two HTTP/1.1 clients of the instance hop share: a connection whose response
httptools parses (the C parser uvicorn uses), and the errors both raise.

`http1.py` (the pooled one-shot client of the hot path) and `http1_stream.py` (a
streamed answer, part by part) differ in what they do with the parts of a response; the
feeding of the parser, the headers and the tell-tale of a body that the server's close
ends are the same, and live here.
"""

from __future__ import annotations

import asyncio

import httptools


class InstanceUnreachable(ConnectionError):
    """The connection could not be made: the request never reached the instance."""


class InstanceDisconnected(ConnectionError):
    """The connection broke before a whole response arrived (the request may have run).

    `answered`: the response had started (its head arrived), so the instance certainly
    ran the request and broke off its answer (a streamed answer whose model failed
    mid-stream, container/streams.py): never resent."""

    def __init__(self, message: str, answered: bool = False) -> None:
        super().__init__(message)
        self.answered = answered


class InstanceStreamFailed(Exception):
    """A streamed answer that the instance ended with its error trailer: the model failed
    after the answer started (container/stream_error.py). `message` is the error's text."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ResponseProtocol(asyncio.Protocol):
    """One connection to an instance, its bytes fed to `parser` (an
    `httptools.HttpResponseParser` of this protocol, made by the subclass). A subclass has
    the parser's other callbacks (`on_headers_complete`, `on_body`, ...), `_fail` (the
    response broke) and `close` (abort the connection)."""

    transport: asyncio.Transport | None
    parser: httptools.HttpResponseParser
    headers: dict[bytes, bytes]  # lower-case names

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(InstanceDisconnected(f"malformed response from the instance: {exc}"))
            self.close()

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def close_delimited(self) -> bool:
        """The response has neither Content-Length nor Transfer-Encoding: its body is
        whatever arrives until the server closes the connection (HTTP/1.0 style)."""
        h = self.headers
        return b"content-length" not in h and b"transfer-encoding" not in h

    def _fail(self, exc: BaseException) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError
