"""Sentry's REST API: the organization issues endpoint (the project one rejects statsPeriod=1h)."""

import aiohttp

from monitor.context.config import SentryEntry
from monitor.context.model import SentryIssue
from monitor.context.sentry import parse
from monitor.context.vendor import request_json


class SentryClient:
    def __init__(self, entry: SentryEntry, http: aiohttp.ClientSession, timeout: float) -> None:
        self.entry = entry
        self._http = http
        self._timeout = timeout
        self._project_id = entry.project_id
        """The numeric id, looked up once from the slug."""

    @property
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.entry.token_env.value()}"}

    async def project_id(self) -> int:
        if self._project_id is None:
            url = f"{self.entry.api_url}projects/{self.entry.organization}/{self.entry.project}/"
            payload = await request_json(self._http, "GET", url, headers=self._headers, timeout=self._timeout)
            self._project_id = parse.parse_project_id(payload)
        return self._project_id

    async def top_issues(self) -> list[SentryIssue]:
        """Unresolved issues seen in the last hour, most frequent first."""
        params = {
            "project": str(await self.project_id()), "statsPeriod": "1h", "query": "is:unresolved",
            "sort": "freq", "limit": str(parse.MAX_ISSUES),
        }
        url = f"{self.entry.api_url}organizations/{self.entry.organization}/issues/"
        payload = await request_json(self._http, "GET", url, headers=self._headers, timeout=self._timeout,
                                     params=params)
        return parse.parse_issues(payload)
