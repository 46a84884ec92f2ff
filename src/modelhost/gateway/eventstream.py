"""AWS event-stream framing (`application/vnd.amazon.eventstream`), the encoding side.

InvokeEndpointWithResponseStream answers with a stream of these messages, which botocore
decodes (`botocore.eventstream.EventStreamBuffer`). One message is:

    prelude:  total length (u32), headers length (u32), CRC32 of those 8 bytes (u32)
    headers:  name length (u8), name, value type (u8; 7 = string), value length (u16), value
    payload:  bytes
    trailer:  CRC32 of everything before it (u32)

All integers are big-endian. Only string-valued headers are needed here (`:message-type`,
`:event-type`, `:exception-type`, `:content-type`), so only those are encoded.
"""

from __future__ import annotations

import json
import struct
from binascii import crc32

_STRING = 7
_PRELUDE = struct.Struct(">II")
_U32 = struct.Struct(">I")
# botocore's limits: 128 KiB of headers, 16 MiB for a whole message.
MAX_HEADERS_BYTES = 128 * 1024
MAX_PAYLOAD_BYTES = 16 * 1024 * 1024 - 64 * 1024
CONTENT_TYPE = b"application/vnd.amazon.eventstream"


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return (
        bytes((len(raw_name),))
        + raw_name
        + bytes((_STRING,))
        + struct.pack(">H", len(raw_value))
        + raw_value
    )


def encode_message(headers: list[tuple[str, str]], payload: bytes) -> bytes:
    """One event-stream message with string `headers` and `payload`."""
    head = b"".join(_header(name, value) for name, value in headers)
    if len(head) > MAX_HEADERS_BYTES or len(payload) > MAX_PAYLOAD_BYTES:
        raise ValueError("event-stream message too large")
    total = _PRELUDE.size + 4 + len(head) + len(payload) + 4
    prelude = _PRELUDE.pack(total, len(head))
    message = prelude + _U32.pack(crc32(prelude)) + head + payload
    return message + _U32.pack(crc32(message))


def event(event_type: str, payload: bytes, content_type: str = "application/octet-stream") -> bytes:
    """An `event` message (e.g. `PayloadPart` whose payload is its `Bytes` member)."""
    return encode_message(
        [
            (":event-type", event_type),
            (":content-type", content_type),
            (":message-type", "event"),
        ],
        payload,
    )


def payload_parts(data: bytes) -> list[bytes]:
    """`PayloadPart` events for `data`, split where one message would be too large."""
    if len(data) <= MAX_PAYLOAD_BYTES:
        return [event("PayloadPart", data)]
    return [
        event("PayloadPart", data[i : i + MAX_PAYLOAD_BYTES])
        for i in range(0, len(data), MAX_PAYLOAD_BYTES)
    ]


def exception(exception_type: str, members: dict[str, str]) -> bytes:
    """An `exception` message (`ModelStreamError`, `InternalStreamFailure`): botocore
    raises it as `EventStreamError` with the type as the error code."""
    return encode_message(
        [
            (":exception-type", exception_type),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        json.dumps(members).encode(),
    )
