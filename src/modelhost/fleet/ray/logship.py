"""Instance logs of a Ray node the gateway cannot read: the node buffers, the gateway pulls.

On one machine (or with the gateway's home on a path every node shares) a Ray instance
writes its output straight to its log file in the gateway's logs directory, as a local
instance does, and the gateway's indexer turns it into log events. A node on another
machine cannot write there. The actor finds out at start (`sees_gateway_log`: the file
the gateway just created, with the line it wrote, is there or not); when it is not (or
the `ray_instance_logs` setting says `ship`), the instance's output goes into a pipe the
actor reads into a `LogBuffer`, and the gateway pulls it (`InstanceActor.read_log`) on
each of its health checks and appends it to the same log file. Nothing else changes:
GetLogEvents, FilterLogEvents, the dashboard and a failed start's FailureReason read
that file.

The buffer is bounded (`ray_log_buffer_bytes`): while the gateway is away (restarting,
or a new leader not yet adopting the instance) the output waits on the node; past the
cap the oldest whole lines are dropped and counted, and the gateway writes how many
bytes it missed into the log. A read names the offset the gateway has (`since`), which
also frees everything before it; a gateway that adopts the instance passes None and
continues where the last reader stopped (a batch read by a gateway that died before
writing it is sent again: at least once, never silently lost).

This module is imported on the nodes: the standard library only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("modelhost.fleet")

# One pull moves at most this much; the next health check takes the rest. So an instance
# keeps up to this much output per health check (2 MiB/s at the default 2 s) without
# drops, and the gateway writes at most this much per instance per check.
SHIP_BYTES = 4 * 1024 * 1024
# How long an exited instance's last output may take to reach the gateway before the
# fleet is told of the exit anyway (the actor answers in well under a second).
DRAIN_S = 10.0
_READ_CHUNK = 64 * 1024


@dataclass(frozen=True)
class LogBatch:
    """Bytes `[start, start + len(data))` of an instance's output; `dropped_bytes` were
    lost before `start` (the buffer was full), `more` says the buffer holds more after
    this batch, `closed` that the output has ended (the process and its children exited)."""

    start: int
    data: bytes
    dropped_bytes: int = 0
    more: bool = False
    closed: bool = False

    @property
    def end(self) -> int:
        return self.start + len(self.data)


class LogBuffer:
    """An instance's output as it arrives, at most `cap_bytes` of it unread (thread-safe:
    the actor's pump thread appends while its method threads read)."""

    def __init__(self, cap_bytes: int) -> None:
        self.cap_bytes = max(1, cap_bytes)
        self._lock = threading.Lock()
        self._buf = bytearray()
        self._base = 0  # offset of _buf[0] in the whole output
        self._acked = 0  # the readers have everything before this offset
        self._closed = False

    def append(self, data: bytes) -> None:
        with self._lock:
            self._buf += data
            over = len(self._buf) - self.cap_bytes
            if over > 0:
                # Drop whole lines where it can: the next line starts clean.
                newline = self._buf.find(b"\n", over - 1)
                cut = newline + 1 if newline >= 0 else len(self._buf)
                del self._buf[:cut]
                self._base += cut

    def close(self) -> None:
        with self._lock:
            self._closed = True

    def read(self, since: int | None, max_bytes: int = SHIP_BYTES) -> LogBatch:
        """The output from `since` (None: from where the last reader stopped), at most
        `max_bytes`; everything before `since` is freed."""
        with self._lock:
            end = self._base + len(self._buf)
            wanted = self._acked if since is None else min(max(since, 0), end)
            if wanted > self._base:
                free = min(wanted, end) - self._base
                del self._buf[:free]
                self._base += free
            self._acked = max(self._acked, wanted)
            start = max(wanted, self._base)
            data = bytes(self._buf[start - self._base : start - self._base + max_bytes])
            more = start + len(data) < end
            return LogBatch(start, data, start - wanted, more, self._closed and not more)

    def pump(self, stream: IO[bytes]) -> None:
        """Read `stream` (the instance's stdout and stderr) into the buffer until it ends."""
        fd = stream.fileno()
        try:
            while chunk := os.read(fd, _READ_CHUNK):
                self.append(chunk)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                stream.close()
            self.close()

    def follow(self, stream: IO[bytes]) -> threading.Thread:
        """Pump `stream` in a daemon thread (joined by the actor's `wait`)."""
        thread = threading.Thread(target=self.pump, args=(stream,), daemon=True)
        thread.start()
        return thread


def sees_gateway_log(log_path: Path, head: str) -> bool:
    """Whether this node reads the log file the gateway created for the instance: it
    exists here and starts with the line the gateway wrote (which names the instance, so
    a file of the same path on another machine cannot pass)."""
    if not head:
        return False
    expected = head.encode()
    try:
        with open(log_path, "rb") as f:
            return f.read(len(expected)) == expected
    except OSError:
        return False


# --- the gateway's side -----------------------------------------------------------------


@dataclass
class LogFollower:
    """The gateway's cursor on one instance's shipped output: the offset it has (None: not
    known yet, an adopted instance), the pull in flight (a Ray ObjectRef) and, once the
    process has exited, since when the last lines are being drained."""

    node: str
    since: int | None = None
    pending: Any = None
    exited_s: float | None = None
    _final: bool = False  # the pull in flight was asked after the exit

    def step(self, ray_api: Any, actor: Any, log_path: Path) -> bool:
        """One pull, never blocking: write the batch that arrived, ask for the next. True
        once the process has exited and a pull asked after that found nothing more (or
        the actor is gone: nothing more can come)."""
        if self.pending is not None:
            ready, _ = ray_api.wait([self.pending], timeout=0)
            if not ready:
                return False
            try:
                batch = ray_api.get(self.pending)
            except Exception:
                self.pending = None
                return True
            final = self._final
            if self.written(batch, log_path) and final:
                return True
        self._final = self.exited_s is not None
        self.pending = actor.read_log.remote(self.since, SHIP_BYTES)
        return False

    def drained(self, ray_api: Any, actor: Any, log_path: Path, now_s: float) -> bool:
        """`step` for an exited process: True once its last lines are in the gateway's
        file, or after `DRAIN_S` (the fleet waits on this to report the exit)."""
        if self.exited_s is None:
            self.exited_s = now_s
        return self.step(ray_api, actor, log_path) or now_s - self.exited_s > DRAIN_S

    def written(self, batch: LogBatch | None, log_path: Path) -> bool:
        """Append `batch` to the gateway's log file; True when nothing more waits on the
        node (the batch was the last of the buffer, or the actor answered nothing)."""
        self.pending = None
        if batch is None:
            return True
        try:
            append_batch(log_path, batch, self.node)
        except OSError as exc:  # the gateway's disk: say so, keep following
            log.warning("cannot write shipped instance output to %s: %s", log_path, exc)
        self.since = batch.end
        return not batch.more

    async def drain(
        self, read: Callable[[int | None], Awaitable[Any]], log_path: Path, rounds: int = 16
    ) -> None:
        """Pull what is left (a stopping instance's last lines); `read(since)` is the
        actor's `read_log`. Bounded by `rounds` pulls; the caller bounds the time."""
        if self.pending is not None:  # asked before the stop: more may have come since
            self.written(await self.pending, log_path)
        for _ in range(rounds):
            if self.written(await read(self.since), log_path):
                return


def append_batch(log_path: Path, batch: LogBatch, node: str) -> None:
    """Write a shipped batch into the gateway's log file, after a line saying what was
    dropped before it, if anything was."""
    if not batch.data and not batch.dropped_bytes:
        return
    with open(log_path, "ab") as f:
        if batch.dropped_bytes:
            f.write(
                f"\nmodelhost: {batch.dropped_bytes} bytes of this instance's output were "
                f"dropped on node {node}: its buffer (ray_log_buffer_bytes) filled before "
                "the gateway read it\n".encode()
            )
        f.write(batch.data)
