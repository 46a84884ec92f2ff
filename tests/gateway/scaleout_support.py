"""Two gateways on one PostgreSQL, for the scale-out tests: a leader and a follower."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from modelhost.testing.server import ModelhostServer
from tests.support import FAST_ENV


def until(condition: Callable[[], Any], what: str, timeout_s: float = 90.0) -> Any:
    """The first truthy `condition()`, polled until the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"not in {timeout_s} s: {what}"
        time.sleep(0.05)


@contextmanager
def two_gateways(
    tmp_path: Path, url: str, extra: dict[str, str] | None = None
) -> Iterator[tuple[ModelhostServer, ModelhostServer]]:
    """A leader and a follower on `url`, with separate homes that share only the master
    key file (the secret-encryption key; a setting of its own once that lands)."""
    env = {
        **FAST_ENV,
        "MODELHOST_DATABASE_URL": url,
        "MODELHOST_LEADER_POLL_INTERVAL_S": "0.2",
        "MODELHOST_LEADER_KEEPALIVE_TIMEOUT_S": "2",
        **(extra or {}),
    }
    with ModelhostServer(tmp_path / "a", env=env) as leader:
        (tmp_path / "b" / "auth").mkdir(parents=True, mode=0o700)
        (tmp_path / "b" / "auth" / "master.key").symlink_to(tmp_path / "a/auth/master.key")
        with ModelhostServer(tmp_path / "b", env=env) as follower:
            yield leader, follower
