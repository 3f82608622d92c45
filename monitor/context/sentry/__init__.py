"""The Sentry provider: the most frequent unresolved issues of the last hour."""

from datetime import datetime

import structlog

from monitor.context.model import SentryContext
from monitor.context.sentry.client import SentryClient
from monitor.context.vendor import VendorError

log = structlog.get_logger("monitor.context.sentry")


class SentryProvider:
    name = "Sentry"

    def __init__(self, client: SentryClient) -> None:
        self.client = client
        self.steps: set[str] = set()
        """Always empty: Sentry's one step needs no name when it times out."""

    def empty(self) -> SentryContext:
        return SentryContext()

    async def gather(self, section: SentryContext, detected_at: datetime) -> None:
        try:
            section.issues = await self.client.top_issues()
        except VendorError as exc:
            section.problems.append(str(exc))
            log.warning("context.vendor_failed", vendor=self.name, error=str(exc))
