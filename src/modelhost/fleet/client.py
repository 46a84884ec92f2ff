"""Keep-alive HTTP client from the gateway to instances (the container contract)."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from modelhost.fleet.instance import Instance


@dataclass
class PingResult:
    status: int  # 0 when the instance could not be reached
    body: bytes


class InstanceClient:
    """One aiohttp session for all instances: pooled keep-alive connections per port."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

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
