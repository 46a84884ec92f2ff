"""Pages of log events and their tokens, as CloudWatch Logs hands them out.

GetLogEvents: a forward token `f/<id>` reads the events after event `<id>`, a backward
token `b/<id>` the events before it. When a forward read finds nothing new it returns the
token it was given, which is how SDK loops (the SageMaker SDK's `log_stream`, the AWS CLI's
`logs tail`-style polling) know they are at the end; call again later with the same token
to get what arrived since. Without a token, `startFromHead` reads from the first event,
otherwise the last `limit` events are returned. FilterLogEvents pages across streams in
(timestamp, id) order and omits `nextToken` on its last page. Other tokens (group and
stream listings) are opaque keys made by `encode_token`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any

from modelhost.errors import InvalidParameterException
from modelhost.telemetry.log_filter import FilterPattern
from modelhost.telemetry.log_store import Event, LogStore, Stream

MAX_RESPONSE_BYTES = 1024 * 1024  # CloudWatch's cap on one page of events
EVENT_OVERHEAD_BYTES = 26


def bad_token() -> InvalidParameterException:
    return InvalidParameterException("The specified nextToken is invalid.")


def encode_token(kind: str, *key: Any) -> str:
    raw = json.dumps([kind, *key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str | None, kind: str) -> tuple[Any, ...]:
    """The key inside a token made by `encode_token(kind, ...)`; InvalidParameter if not."""
    if not token:
        raise bad_token()
    try:
        value = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, binascii.Error) as exc:
        raise bad_token() from exc
    if not isinstance(value, list) or not value or value[0] != kind:
        raise bad_token()
    return tuple(value[1:])


def _position(token: str) -> tuple[str, int]:
    direction, _, number = token.partition("/")
    if direction not in ("f", "b") or not number.isdigit():
        raise bad_token()
    return direction, int(number)


def _within_bytes(events: list[Event], keep_last: bool) -> list[Event]:
    """The events that fit one response, from the front (or the back when `keep_last`)."""
    total, kept = 0, 0
    for event in reversed(events) if keep_last else events:
        total += len(event.message.encode()) + EVENT_OVERHEAD_BYTES
        if total > MAX_RESPONSE_BYTES and kept:
            break
        kept += 1
    return events[len(events) - kept :] if keep_last else events[:kept]


def event_page(
    store: LogStore,
    stream: Stream,
    *,
    token: str | None,
    start_from_head: bool,
    start_ms: int | None,
    end_ms: int | None,
    limit: int,
) -> dict[str, Any]:
    """The GetLogEvents response for one stream (see the module docstring)."""
    direction, position = _position(token) if token else ("f" if start_from_head else "b", 0)
    if direction == "f":
        events = store.stream_events(
            stream, after_id=position, start_ms=start_ms, end_ms=end_ms, limit=limit, newest=False
        )
        events = _within_bytes(events, keep_last=False)
        if events:
            forward, backward = events[-1].id, events[0].id
        else:
            forward = position if token else store.last_event_id(stream)
            backward = forward + 1
    else:
        before = position if token else None
        events = store.stream_events(
            stream, before_id=before, start_ms=start_ms, end_ms=end_ms, limit=limit, newest=True
        )
        events = _within_bytes(events, keep_last=True)
        if events:
            forward, backward = events[-1].id, events[0].id
        elif token:
            forward, backward = max(position - 1, 0), position
        else:
            forward = store.last_event_id(stream)
            backward = forward + 1
    out_forward = f"f/{forward:020d}"
    out_backward = f"b/{backward:020d}"
    # Nothing new going forward: hand back the very token we were given.
    if token and direction == "f" and not events:
        out_forward = token
    if token and direction == "b" and not events:
        out_backward = token
    return {
        "events": [
            {"timestamp": e.timestamp_ms, "message": e.message, "ingestionTime": e.ingestion_ms}
            for e in events
        ],
        "nextForwardToken": out_forward,
        "nextBackwardToken": out_backward,
    }


def filter_page(
    store: LogStore,
    streams: Sequence[Stream],
    pattern: FilterPattern,
    *,
    token: str | None,
    start_ms: int | None,
    end_ms: int | None,
    limit: int,
) -> dict[str, Any]:
    """The FilterLogEvents response over `streams`."""
    after: tuple[int, int] | None = None
    if token:
        key = decode_token(token, "p")
        if len(key) != 2 or not all(isinstance(k, int) for k in key):
            raise bad_token()
        after = (key[0], key[1])
    found = store.filter_events(
        streams, pattern, after=after, start_ms=start_ms, end_ms=end_ms, limit=limit + 1
    )
    events = _within_bytes(found[:limit], keep_last=False)
    out: dict[str, Any] = {
        "events": [
            {
                "logStreamName": e.stream,
                "timestamp": e.timestamp_ms,
                "message": e.message,
                "ingestionTime": e.ingestion_ms,
                "eventId": str(e.id),
            }
            for e in events
        ],
        "searchedLogStreams": [
            {"logStreamName": s.name, "searchedCompletely": True} for s in streams
        ],
    }
    if len(events) < len(found):
        last = events[-1]
        out["nextToken"] = encode_token("p", last.timestamp_ms, last.id)
    return out
