"""Keep-alive HTTP clients from the gateway to instances (the container contract).

Invocations (the hot path) go through `HTTP1Pool` (fleet/http1.py), a lean client on
asyncio + httptools; health checks and anything else keep aiohttp's full client.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from modelhost.fleet.http1 import HTTP1Pool
from modelhost.fleet.instance import Instance


@dataclass
class PingResult:
    status: int  # 0 when the instance could not be reached
    body: bytes


class InstanceClient:
    """Pooled keep-alive connections per instance port: `http` for invocations, one
    aiohttp session for pings."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self.http = HTTP1Pool()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=0, limit_per_host=0, keepalive_timeout=60, ttl_dns_cache=None
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                # Instances ignore these; not sending them saves work on the hot path.
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            )
        return self._session

    async def close(self) -> None:
        self.http.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def ping(self, instance: Instance, timeout_s: float) -> PingResult:
        try:
            async with self.session.get(
                f"{instance.base_url}/ping", timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as resp:
                return PingResult(resp.status, await resp.read())
        except (aiohttp.ClientError, TimeoutError, OSError):
            return PingResult(0, b"")
