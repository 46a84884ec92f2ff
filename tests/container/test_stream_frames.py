"""The framing an instance on uvicorn uses for a streamed answer the gateway asked frames
for (`container.stream_frames`): read back whatever the pieces it arrives in."""

from __future__ import annotations

import pytest

from modelhost.container.stream_frames import DATA, ERROR, Deframer, FrameError, frame

# Model output that looks like frames, or like anything: the lengths keep it data.
BODY = frame(DATA, b"tick ") + frame(DATA, frame(ERROR, b"fake")) + frame(DATA, b"")
FAILED = BODY + frame(ERROR, "ValueError: ünïcode\nTraceback".encode())


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 1000])
def test_frames_read_back_in_pieces_of_any_size(size: int) -> None:
    reader = Deframer()
    data = b"".join(
        b"".join(reader.feed(FAILED[i : i + size])) for i in range(0, len(FAILED), size)
    )
    assert data == b"tick " + frame(ERROR, b"fake")
    assert reader.error == "ValueError: ünïcode\nTraceback"
    assert reader.at_boundary


def test_a_whole_answer_has_no_error_and_a_cut_one_is_not_at_a_boundary() -> None:
    reader = Deframer()
    assert b"".join(reader.feed(BODY)) == b"tick " + frame(ERROR, b"fake")
    assert reader.error is None and reader.at_boundary
    cut = Deframer()
    cut.feed(BODY[:3])
    assert not cut.at_boundary
    cut = Deframer()
    cut.feed(frame(DATA, b"abcdef")[:-2])
    assert not cut.at_boundary


def test_a_large_data_frame_is_handed_out_as_it_arrives() -> None:
    reader = Deframer()
    payload = b"x" * 10_000
    whole = frame(DATA, payload)
    assert reader.feed(whole[:1005]) == [payload[:1000]]
    assert reader.feed(whole[1005:]) == [payload[1000:]]


@pytest.mark.parametrize(
    "bad", [b"\x07\x00\x00\x00\x01x", frame(ERROR, b"x" * 70_000), frame(ERROR, b"a") * 2]
)
def test_a_body_that_breaks_the_framing_is_refused(bad: bytes) -> None:
    with pytest.raises(FrameError):
        Deframer().feed(bad)
