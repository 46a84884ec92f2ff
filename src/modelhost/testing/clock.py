"""A clock that moves only when a test moves it.

Code that depends on time takes a clock (`Callable[[], float]`, e.g. `time.time` or
`time.monotonic`) and, where it waits, a sleep function; tests hand it a `FakeClock` and
its `sleep`, so time-based behaviour (windows, cooldowns, expiries, timeouts) is tested in
microseconds and never depends on how busy the machine is.
"""

from __future__ import annotations

import asyncio


class FakeClock:
    """Wall and monotonic time in seconds, both advanced only by `advance`, `advance_to`
    and `sleep`. A `FakeClock` is itself callable (returns `now()`), so it can be passed
    wherever a `Callable[[], float]` clock is injected."""

    def __init__(self, start_s: float = 1_000_000.0) -> None:
        self._now_s = float(start_s)
        self.slept_s: list[float] = []  # every sleep asked for, in order

    def now(self) -> float:
        """Stands in for `time.time()`."""
        return self._now_s

    def monotonic(self) -> float:
        """Stands in for `time.monotonic()` (the same timeline as `now`)."""
        return self._now_s

    def __call__(self) -> float:
        return self._now_s

    def advance(self, seconds: float) -> float:
        """Move forward by `seconds` (never back); return the new time."""
        if seconds < 0:
            raise ValueError(f"a clock does not go back: advance({seconds})")
        self._now_s += seconds
        return self._now_s

    def advance_to(self, when_s: float) -> float:
        """Move forward to `when_s` (never back); return it."""
        return self.advance(when_s - self._now_s)

    async def sleep(self, seconds: float) -> None:
        """Stands in for `asyncio.sleep`: time passes at once, other tasks get a turn."""
        self.sleep_sync(seconds)
        await asyncio.sleep(0)

    def sleep_sync(self, seconds: float) -> None:
        """Stands in for `time.sleep`."""
        self.slept_s.append(seconds)
        self.advance(max(0.0, seconds))
