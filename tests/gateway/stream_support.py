"""Reading an InvokeEndpointWithResponseStream answer as raw event-stream messages, for the
streaming tests that check what boto3 does not show (a ModelStreamError's `ErrorCode`)."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from botocore.eventstream import EventStreamBuffer

from modelhost.gateway.auth.client import signed_headers
from modelhost.testing.server import ModelhostServer


def stream_messages(
    server: ModelhostServer, endpoint: str, body: bytes, content_type: str = "text/plain"
) -> list[tuple[str, Any]]:
    """The stream's messages as (event or exception type, payload): a `PayloadPart`'s bytes,
    an exception's JSON members."""
    url = f"{server.url}/endpoints/{endpoint}/invocations-response-stream"
    headers = {**signed_headers(url, "POST", server.credentials), "Content-Type": content_type}
    with urllib.request.urlopen(urllib.request.Request(url, body, headers), timeout=60) as resp:
        assert resp.status == 200
        data = resp.read()
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    out: list[tuple[str, Any]] = []
    for message in buffer:
        if message.headers[":message-type"] == "exception":
            out.append((message.headers[":exception-type"], json.loads(message.payload)))
        else:
            out.append((message.headers[":event-type"], message.payload))
    return out
