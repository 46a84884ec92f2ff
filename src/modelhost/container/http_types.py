"""What the instance's HTTP server and its connections share: the limits, one parsed
request, and the status lines (container/http_connection.py, container/http_server.py)."""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus

from modelhost.container.asgi import Headers as RawHeaders

_STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in HTTPStatus}


def status_line(status: int) -> bytes:
    """`HTTP/1.1 <status> <reason>` and its line end."""
    line = _STATUS_LINES.get(status)
    return line if line is not None else f"HTTP/1.1 {status} \r\n".encode()


@dataclass(frozen=True)
class HttpLimits:
    """What one client may send and how slowly (the gateway's defaults; the gateway is
    normally the only client, but the port answers anyone on the machine)."""

    max_head_bytes: int = 64 * 1024
    max_headers: int = 100
    # Transform jobs send up to 100 MB (MaxPayloadInMB); nothing legitimate sends more.
    max_body_bytes: int = 1024**3
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    # Longer than any client pool's idle timeout, so the server is never the side that
    # closes an idle keep-alive connection while the gateway starts reusing it.
    keep_alive_s: float = 75.0


@dataclass(slots=True)
class Request:
    """One complete request, as the handlers need it."""

    method: bytes
    url: bytes
    headers: RawHeaders
    body: bytes
    keep_alive: bool
    version: str
