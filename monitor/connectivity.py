"""The monitor's own connectivity. When the daemon's network is down every check fails at
once; this probe, a URL or host:port that should always answer, tells that apart from a
real outage before any incident opens."""

import asyncio
from urllib.parse import urlsplit

import aiohttp

from monitor.clock import Clock

_CACHE_SECONDS = 5.0
_TIMEOUT_SECONDS = 5.0


class ConnectivityProbe:
    def __init__(self, target: str, http: aiohttp.ClientSession, clock: Clock) -> None:
        self.target = target
        self._http = http
        self._clock = clock
        self._lock = asyncio.Lock()
        self._checked_at: float | None = None
        self._reachable = True

    async def reachable(self) -> bool:
        """Whether the target answers; probed at most once every few seconds."""
        async with self._lock:
            now = self._clock.monotonic()
            if self._checked_at is None or now - self._checked_at >= _CACHE_SECONDS:
                self._reachable = await self._probe()
                self._checked_at = self._clock.monotonic()
            return self._reachable

    async def _probe(self) -> bool:
        try:
            async with asyncio.timeout(_TIMEOUT_SECONDS):
                if "://" in self.target:
                    async with self._http.get(self.target) as response:
                        return response.status < 500
                host, _, port = self.target.rpartition(":")
                _, writer = await asyncio.open_connection(host.strip("[]"), int(port))
                writer.close()
                await writer.wait_closed()
                return True
        except (OSError, TimeoutError, aiohttp.ClientError, ValueError):
            return False

    @property
    def display(self) -> str:
        parts = urlsplit(self.target)
        return f"{parts.scheme}://{parts.hostname}" if parts.scheme else self.target
