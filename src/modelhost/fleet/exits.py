"""Instance exits as events: a callback on the event loop the moment a process ends.

A pidfd (`pidfd_open(2)`) becomes readable when its process ends, whether the gateway is
its parent (a spawned instance) or not (one forked by a zygote), and it names exactly
that process even once its pid is reused. The providers register each instance's pidfd
here, so a fleet hears of a killed instance at once instead of at its next health check
(which stays the way to notice an instance that hangs without exiting).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable


class ExitWatch:
    """Readers on the running event loop for the pidfds of watched instances, by id."""

    def __init__(self) -> None:
        self._watched: dict[str, tuple[int, asyncio.AbstractEventLoop]] = {}

    def watch(self, key: str, pidfd: int, on_exit: Callable[[], None]) -> None:
        """Call `on_exit` once when the process behind `pidfd` ends (a copy of the fd is
        kept; the caller keeps its own). Without a running loop nothing is watched."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self.forget(key)
        fd = os.dup(pidfd)

        def fire() -> None:
            self.forget(key)
            on_exit()

        loop.add_reader(fd, fire)
        self._watched[key] = (fd, loop)

    def forget(self, key: str) -> None:
        """Stop watching `key` (it is being stopped on purpose, or has ended)."""
        entry = self._watched.pop(key, None)
        if entry is None:
            return
        fd, loop = entry
        with contextlib.suppress(Exception):  # the loop may be closed at interpreter exit
            loop.remove_reader(fd)
        os.close(fd)

    def forget_all(self) -> None:
        for key in list(self._watched):
            self.forget(key)
