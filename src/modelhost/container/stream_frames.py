"""How an instance on uvicorn tells the gateway that its streamed answer failed midway:
length-prefixed frames, asked for by the gateway.

The instance's own server ends a failed stream with a trailer (container/stream_error.py).
uvicorn writes HTTP/1.1 without trailers, and its chunk framing is its own: the app cannot
add a chunk extension either, so on uvicorn nothing after the head can tell "the model
finished" from "the model failed, because X" except the body itself. A marker in the body
could be the model's own output, so the body is framed instead, and only when both sides
agree:

- the gateway's streaming reader (fleet/http1_stream.py) sends `x-modelhost-stream-frames: 1`
  with every streamed request, meaning "I can read frames";
- an instance that cannot send trailers (uvicorn) and got that header answers a streamed
  answer with `x-modelhost-stream-frames: 1` in its head, and a body of frames: one byte of
  kind (`DATA` 0, `ERROR` 1), four bytes of big-endian length, that many bytes. Each model
  chunk is one `DATA` frame; a failure is one `ERROR` frame carrying the error's text (UTF-8,
  at most `stream_error.MAX_MESSAGE_CHARS` characters), after which the answer ends
  normally.

The lengths make the frames self-delimiting, so no model output can pass for an error, and
the gateway reads the framing only when the head says so: a user's server (BYOC) never sends
that header and is read as before; `InvokeEndpoint` (fleet/http1.py) never asks and gets the
model's bytes as they are. The trailer stays the signal of the instance's own server, which
never frames.
"""

from __future__ import annotations

import struct

FRAMES = b"x-modelhost-stream-frames"
DATA, ERROR = 0, 1
_HEAD = struct.Struct(">BI")
MAX_ERROR_BYTES = 64 * 1024  # an error's text is at most 4096 characters (<= 16 KiB UTF-8)


def frame(kind: int, payload: bytes) -> bytes:
    """One frame (see the module docstring)."""
    return _HEAD.pack(kind, len(payload)) + payload


class FrameError(ValueError):
    """The framed body broke the framing: an unknown kind, or an error frame too large."""


class Deframer:
    """Reads a framed body fed in pieces of any size: `feed` answers the model's bytes it
    carried (each piece of a `DATA` frame as it arrives, so a large frame is not held);
    `error` is the text of an `ERROR` frame once it has arrived whole; `at_boundary` says
    whether the body so far ends between two frames."""

    def __init__(self) -> None:
        self._head = bytearray()
        self._kind = DATA
        self._left = 0  # payload bytes still to come in the current frame
        self._error = bytearray()
        self.error: str | None = None

    @property
    def at_boundary(self) -> bool:
        return self._left == 0 and not self._head

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        view = memoryview(data)
        while view:
            if self._left == 0:
                take = _HEAD.size - len(self._head)
                self._head += view[:take]
                view = view[take:]
                if len(self._head) == _HEAD.size:
                    self._start(*_HEAD.unpack(self._head))
                    self._head.clear()
                continue
            piece, view = view[: self._left], view[self._left :]
            self._left -= len(piece)
            if self._kind == DATA:
                out.append(bytes(piece))
            else:
                self._error += piece
                if self._left == 0:
                    self.error = self._error.decode("utf-8", "replace")
        return out

    def _start(self, kind: int, length: int) -> None:
        if kind not in (DATA, ERROR):
            raise FrameError(f"unknown frame kind {kind}")
        if kind == ERROR and (length > MAX_ERROR_BYTES or self._error or self.error is not None):
            raise FrameError(f"an error frame of {length} bytes, or a second one")
        self._kind, self._left = kind, length
        if kind == ERROR and length == 0:
            self.error = ""
