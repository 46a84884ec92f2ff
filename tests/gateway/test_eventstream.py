"""The event-stream encoder, checked by botocore's own decoder and response parser."""

from __future__ import annotations

import botocore.session
import pytest
from botocore.eventstream import ChecksumMismatch, EventStream, EventStreamBuffer
from botocore.exceptions import EventStreamError
from botocore.parsers import EventStreamJSONParser

from modelhost.gateway import eventstream


def _decode(data: bytes) -> list[tuple[dict[str, object], bytes]]:
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    return [(m.headers, m.payload) for m in buffer]


def test_messages_decode_with_botocore() -> None:
    data = eventstream.event("PayloadPart", b"hello") + eventstream.event("PayloadPart", b"")
    messages = _decode(data)
    assert [p for _, p in messages] == [b"hello", b""]
    assert messages[0][0] == {
        ":event-type": "PayloadPart",
        ":content-type": "application/octet-stream",
        ":message-type": "event",
    }


def test_a_corrupted_byte_fails_the_checksum() -> None:
    data = bytearray(eventstream.event("PayloadPart", b"hello"))
    data[-6] ^= 0xFF
    with pytest.raises(ChecksumMismatch):
        _decode(bytes(data))


def test_large_payloads_are_split_into_parts() -> None:
    data = bytes(range(256)) * (eventstream.MAX_PAYLOAD_BYTES // 256 + 10)
    parts = eventstream.payload_parts(data)
    assert len(parts) == 2
    assert b"".join(p for m in parts for _, p in _decode(m)) == data


class _Raw:
    """What botocore's EventStream reads from: `stream()` yields the body's bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self) -> list[bytes]:
        # Split mid-message to exercise the buffer's reassembly.
        return [self.data[:7], self.data[7:]]

    def close(self) -> None:
        pass


def _sagemaker_stream(data: bytes) -> EventStream:
    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    op = model.operation_model("InvokeEndpointWithResponseStream")
    shape = op.output_shape.members["Body"]
    # What botocore's rest-json parser hands an event-stream body to.
    parser = EventStreamJSONParser()
    return EventStream(_Raw(data), shape, parser, "InvokeEndpointWithResponseStream")


def test_sagemaker_runtime_parses_parts_and_errors() -> None:
    data = (
        eventstream.event("PayloadPart", b"a")
        + eventstream.event("PayloadPart", b"bc")
        + eventstream.exception(
            "ModelStreamError", {"Message": "boom", "ErrorCode": "StreamBroken"}
        )
    )
    events = iter(_sagemaker_stream(data))
    assert next(events) == {"PayloadPart": {"Bytes": b"a"}}
    assert next(events) == {"PayloadPart": {"Bytes": b"bc"}}
    with pytest.raises(EventStreamError) as info:
        next(events)
    assert info.value.response["Error"]["Code"] == "ModelStreamError"
    assert info.value.response["Error"]["Message"] == "boom"
