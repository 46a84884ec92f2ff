"""Tail the instances' log files into the log store, giving every line a timestamp.

Why an indexer rather than timestamps written as lines arrive: an instance's stdout and
stderr go straight to a file (a user's server, a BYOC container or a crashed process
needs no cooperation from us), and the gateway already owns a state directory. The
indexer reads what was appended since its last position (kept in the store, in the same
transaction as the events, so a restart neither repeats nor skips a line), and stamps each
line with the time the line itself starts with (`2026-12-06 09:40:01,123 ...`, the format
of Python's logging and of most servers; naive times are local), else with the time it
read the line. It runs every `logs_poll_interval_s` and before every API read, so an
unstamped line's time is at most one poll late (for a file idle for minutes, at most
`FULL_SCAN_INTERVAL_S`: the poll skips files that have not changed lately). A stream's
times never go backwards: a line stamped earlier than the one before it gets that time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from modelhost.telemetry.log_store import LogStore, NewEvent, Stream, now_ms
from modelhost.telemetry.logs import LOG_SUFFIX, stream_for_path

log = logging.getLogger("modelhost.telemetry")

MAX_EVENT_BYTES = 256 * 1024 - 26  # CloudWatch's largest event (message + 26 bytes)
MAX_READ_BYTES = 8 * 1024 * 1024  # per file per sync, so one chatty instance cannot stall it
PARTIAL_LINE_FLUSH_S = 2.0  # an unterminated last line is indexed once the file is this idle
FUTURE_SLACK_MS = 5_000
SWEEP_INTERVAL_S = 60.0
MIB = 1024 * 1024
# The background poll stats only files that changed lately; the whole tree (new files,
# long-idle ones) is walked this often, and on every API read.
FULL_SCAN_INTERVAL_S = 10.0
HOT_FILE_S = 300.0

_LEADING_TIME = re.compile(
    rb"^\[?(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,6}))?"
    rb"\s?(Z|[+-]\d{2}:?\d{2})?"
)


def leading_time_ms(line: bytes) -> int | None:
    """The timestamp a line starts with, in epoch milliseconds, if it has one."""
    found = _LEADING_TIME.match(line)
    if found is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in found.groups()[:6])
    fraction, zone = found.group(7), found.group(8)
    micros = int((fraction or b"0").ljust(6, b"0")[:6])
    tz: timezone | None = None
    if zone:
        text = zone.decode().replace(":", "")
        if text == "Z":
            tz = UTC
        else:
            sign = -1 if text[0] == "-" else 1
            tz = timezone(sign * timedelta(hours=int(text[1:3]), minutes=int(text[3:5])))
    try:
        moment = datetime(year, month, day, hour, minute, second, micros, tzinfo=tz)
    except ValueError:
        return None
    return int(moment.timestamp() * 1000)  # naive: local time


def stamp(
    lines: list[bytes], last_ms: int | None, ingest_ms: int, oldest_ms: int
) -> list[NewEvent]:
    """Events for `lines`: each line's own time when plausible, else `ingest_ms`, never
    earlier than the event before it."""
    events = []
    floor = last_ms or 0
    for raw in lines:
        text = raw.rstrip(b"\r\n")
        if not text.strip():
            continue
        own = leading_time_ms(text)
        ts = own if own is not None and oldest_ms <= own <= ingest_ms + FUTURE_SLACK_MS else None
        ts = max(ts if ts is not None else ingest_ms, floor)
        floor = ts
        message = text[:MAX_EVENT_BYTES].decode("utf-8", "replace")
        events.append(NewEvent(ts, message))
    return events


def split_lines(data: bytes, at_eof_and_idle: bool) -> tuple[list[bytes], int]:
    """Complete lines of `data` and how many bytes they take; the unterminated rest counts
    as a line only when the writer has gone quiet (or it is longer than one event)."""
    cut = data.rfind(b"\n") + 1
    if cut < len(data) and (at_eof_and_idle or len(data) - cut > MAX_EVENT_BYTES):
        cut = len(data)
    return data[:cut].splitlines(), cut


class LogIndexer:
    """Indexes every instance log file under `logs_dir` into `store`; see the module doc."""

    def __init__(
        self,
        store: LogStore,
        logs_dir: Path,
        *,
        clock: Callable[[], float] = time.time,
        max_file_bytes: int | None = None,
    ) -> None:
        self.store = store
        # Raw files are copies of what the store holds: keep each well under its budget.
        self.max_file_bytes = max_file_bytes or max(MIB, store.max_bytes // 8)
        self.logs_dir = logs_dir
        self.clock = clock
        self._lock = threading.Lock()
        self._streams: dict[str, Stream] = {s.path: s for s in store.tracked_streams() if s.path}
        self._changed: dict[str, float] = {}  # path -> when it last grew (clock time)
        self._last_full_scan = -FULL_SCAN_INTERVAL_S

    def sync(self, full: bool = True) -> int:
        """Index what the files gained since the last sync; returns the events added.
        `full=False` (the background poll) looks only at recently changed files unless a
        full scan is due."""
        with self._lock:
            now = self.clock()
            if full or now - self._last_full_scan >= FULL_SCAN_INTERVAL_S:
                self._last_full_scan = now
                paths = list(self._files())
            else:
                paths = [Path(p) for p, t in self._changed.items() if now - t < HOT_FILE_S]
            added = 0
            for path in paths:
                key = str(path)
                stream = self._streams.get(key)
                if stream is None:
                    names = stream_for_path(self.logs_dir, path)
                    if names is None:
                        continue
                    stream = self.store.ensure_stream(*names, key)
                    self._streams[key] = stream
                    self._changed[key] = now
                before = (stream.file_id, stream.file_offset)
                try:
                    added += self._index(path, stream)
                except OSError as exc:
                    log.debug("cannot index %s: %s", path, exc)
                if (stream.file_id, stream.file_offset) != before:
                    self._changed[key] = now
            return added

    def sweep(self) -> int:
        """Retention: empty the files that are fully indexed and either idle past the age
        limit or over `max_file_bytes`, then drop expired events. Returns events dropped.

        Files are emptied, never deleted: an idle instance may still write, and instances
        open their log in append mode, so their next line lands at the new end."""
        with self._lock:
            cutoff = self.clock() - self.store.retention_s
            for key, stream in list(self._streams.items()):
                try:
                    self._truncate_if_done(Path(key), stream, cutoff)
                except FileNotFoundError:
                    self.store.forget_file(stream)
                    del self._streams[key]
                    self._changed.pop(key, None)
                except OSError as exc:
                    log.debug("cannot check %s: %s", key, exc)
            now = self.clock()
            for key, changed in list(self._changed.items()):
                if now - changed >= HOT_FILE_S:
                    del self._changed[key]
        return self.store.enforce_retention()

    def _truncate_if_done(self, path: Path, stream: Stream, cutoff: float) -> None:
        st = path.stat()
        file_id = f"{st.st_dev}:{st.st_ino}"
        indexed = stream.file_id == file_id and stream.file_offset >= st.st_size > 0
        if indexed and (st.st_mtime < cutoff or st.st_size > self.max_file_bytes):
            os.truncate(path, 0)
            self.store.append(stream, [], file_id, 0)

    async def run(self, poll_interval_s: float) -> None:
        """Sync forever (the gateway runs this as a task); sweep once a minute."""
        last_sweep = -SWEEP_INTERVAL_S
        while True:
            try:
                await asyncio.to_thread(self.sync, False)
                if self.clock() - last_sweep >= SWEEP_INTERVAL_S:
                    last_sweep = self.clock()
                    await asyncio.to_thread(self.sweep)
            except Exception:
                log.exception("indexing instance logs failed")
            await asyncio.sleep(poll_interval_s)

    def _files(self) -> Iterator[Path]:
        for root, _dirs, files in os.walk(self.logs_dir):
            for name in files:
                if name.endswith(LOG_SUFFIX):
                    yield Path(root) / name

    def _index(self, path: Path, stream: Stream) -> int:
        st = path.stat()
        file_id = f"{st.st_dev}:{st.st_ino}"
        offset = stream.file_offset
        if stream.file_id != file_id or st.st_size < offset:
            offset = 0  # a new or truncated file at this path
        if st.st_size == offset and stream.file_id == file_id:
            return 0
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(min(st.st_size - offset, MAX_READ_BYTES))
        at_eof = offset + len(data) >= st.st_size
        idle = self.clock() - st.st_mtime >= PARTIAL_LINE_FLUSH_S
        lines, used = split_lines(data, at_eof and idle)
        ingest = now_ms(self.clock)
        oldest = ingest - int(self.store.retention_s * 1000)
        events = stamp(lines, stream.last_event_ms, ingest, oldest)
        if events or (file_id, offset + used) != (stream.file_id, stream.file_offset):
            self.store.append(stream, events, file_id, offset + used)
        return len(events)
