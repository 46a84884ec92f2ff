"""The instance's model health shared by its worker processes (see `container.workers`),
how many connections of the shared Unix socket each worker holds
(`container.http_server`), and each worker's batching counters (container/instance_stats.py).

Its own module so the app (which writes and reads it) and the worker supervisor (which
creates it before forking) share it without importing each other.
"""

from __future__ import annotations

import mmap

SLOT_BYTES = 1024  # state byte + failure reason (UTF-8, truncated)
STAT_FIELDS = 4  # batches, batched rows, requests alone, largest rows
_STATES = {b"L": "Loading", b"H": "Healthy", b"F": "Failed"}


class SharedHealth:
    """Every worker's model state in shared memory; each worker writes only its slot."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.index = 0
        self._mem = mmap.mmap(-1, count * SLOT_BYTES)  # anonymous + shared across fork
        for i in range(count):
            self._mem[i * SLOT_BYTES] = ord("L")
        # One 8-byte count per worker; each worker writes only its own.
        self._connections = mmap.mmap(-1, count * 8)
        self._stats = mmap.mmap(-1, count * STAT_FIELDS * 8)

    def publish_stats(self, values: tuple[int, ...]) -> None:
        """This worker's batching counters (`STAT_FIELDS` of them), for the others to sum."""
        base = self.index * STAT_FIELDS * 8
        packed = b"".join(v.to_bytes(8, "little", signed=True) for v in values)
        self._stats[base : base + STAT_FIELDS * 8] = packed

    def stats(self) -> list[tuple[int, ...]]:
        """Every worker's last published batching counters."""
        mem, size = self._stats, STAT_FIELDS * 8
        return [
            tuple(
                int.from_bytes(mem[i * size + k * 8 : i * size + k * 8 + 8], "little", signed=True)
                for k in range(STAT_FIELDS)
            )
            for i in range(self.count)
        ]

    def add_connections(self, delta: int) -> None:
        """Count `delta` more (or fewer) connections of the shared socket for this worker."""
        base = self.index * 8
        now = int.from_bytes(self._connections[base : base + 8], "little", signed=True)
        self._connections[base : base + 8] = (now + delta).to_bytes(8, "little", signed=True)

    def connections(self) -> list[int]:
        """Every worker's count of the shared socket's connections."""
        mem = self._connections
        return [
            int.from_bytes(mem[i * 8 : i * 8 + 8], "little", signed=True) for i in range(self.count)
        ]

    def set(self, state: str, reason: str | None = None) -> None:
        base = self.index * SLOT_BYTES
        text = (reason or "").encode()[: SLOT_BYTES - 3]
        self._mem[base + 1 : base + 3] = len(text).to_bytes(2, "big")
        self._mem[base + 3 : base + 3 + len(text)] = text
        self._mem[base] = ord(state[0])  # last: readers see a complete reason

    def instance_state(self) -> tuple[str, str | None]:
        """("Healthy"|"Loading"|"Failed", reason of the first failed worker)."""
        states = []
        for i in range(self.count):
            base = i * SLOT_BYTES
            state = _STATES.get(self._mem[base : base + 1], "Loading")
            if state == "Failed":
                size = int.from_bytes(self._mem[base + 1 : base + 3], "big")
                reason = self._mem[base + 3 : base + 3 + size].decode(errors="replace")
                return "Failed", reason
            states.append(state)
        return ("Healthy" if all(s == "Healthy" for s in states) else "Loading"), None
