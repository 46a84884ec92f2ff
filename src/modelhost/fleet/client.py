"""Keep-alive HTTP clients from the gateway to instances (the container contract).

Invocations and health checks both go through `HTTP1Pool` (fleet/http1.py), a lean
client on asyncio + httptools, to the instance's `address`: its Unix domain socket when
it has one (built-in runtimes on this machine), else its TCP port. A ping therefore
checks the very path invocations take.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelhost.fleet.http1 import HTTP1Pool
from modelhost.fleet.instance import Instance


@dataclass
class PingResult:
    status: int  # 0 when the instance could not be reached
    body: bytes


class InstanceClient:
    """Pooled keep-alive connections per instance address, for invocations and pings."""

    def __init__(self) -> None:
        self.http = HTTP1Pool()

    async def close(self) -> None:
        self.http.close()

    async def ping(self, instance: Instance, timeout_s: float) -> PingResult:
        try:
            status, _, body = await self.http.request(
                instance.address, b"GET", b"/ping", [], b"", timeout_s
            )
        except (TimeoutError, OSError):  # unreachable and disconnected are OSErrors too
            return PingResult(0, b"")
        return PingResult(status, body)
