"""Gathers an incident's context from its providers in parallel, and never for longer than
`[context] timeout`: a provider still running then is cut off, keeps what it had found, and
its context says which step did not answer. Time comes from the injected clock."""

import asyncio
import contextlib
from datetime import datetime, timedelta
from typing import Any, Protocol

import aiohttp
import structlog

from monitor.clock import Clock
from monitor.context.config import ContextSection
from monitor.context.model import IncidentContext, RailwayContext, SentryContext
from monitor.context.railway import RailwayProvider
from monitor.context.railway.client import RailwayClient
from monitor.context.railway.parse import finished
from monitor.context.sentry import SentryProvider
from monitor.context.sentry.client import SentryClient
from monitor.context.sentry.parse import mark_new_since
from monitor.durations import format_duration
from monitor.model import Incident

log = structlog.get_logger("monitor.context")


class Provider(Protocol):
    name: str
    steps: set[str]
    """The steps still running: what a timeout names."""

    async def gather(self, section: Any, detected_at: datetime) -> None: ...


Job = tuple[Provider, RailwayContext | SentryContext]


class ContextGatherer:
    def __init__(self, section: ContextSection, http: aiohttp.ClientSession, clock: Clock) -> None:
        self.section = section
        self._clock = clock
        timeout = section.timeout
        self._railway = {name: RailwayClient(entry, http, timeout) for name, entry in section.railway.items()}
        self._sentry = {name: SentryClient(entry, http, timeout) for name, entry in section.sentry.items()}
        """One client per entry, kept across incidents (Sentry's project id is looked up once)."""

    def covers(self, check: str) -> bool:
        return bool(self.section.railway_for(check) or self.section.sentry_for(check))

    async def gather(self, incident: Incident) -> IncidentContext | None:
        """The context of a covered check's incident; None for a check no entry covers."""
        if not self.covers(incident.check):
            return None
        timeout = self.section.timeout
        context = IncidentContext(detected_at=incident.opened_at)
        jobs: list[Job] = []
        railway = self.section.railway_for(incident.check)
        if railway is not None:
            provider = RailwayProvider(railway[0], self._railway[railway[0]])
            context.railway = provider.empty()
            jobs.append((provider, context.railway))
        sentry = self.section.sentry_for(incident.check)
        if sentry is not None:
            sentry_provider = SentryProvider(self._sentry[sentry[0]])
            context.sentry = sentry_provider.empty()
            jobs.append((sentry_provider, context.sentry))
        await self._run_within(jobs, incident, timeout)
        self._combine(context)
        return context

    async def _run_within(self, jobs: list[Job], incident: Incident, timeout: float) -> None:
        tasks = {
            asyncio.create_task(provider.gather(section, incident.opened_at)): (provider, section)
            for provider, section in jobs
        }
        deadline = asyncio.create_task(self._clock.sleep_until(self._clock.monotonic() + timeout))
        try:
            waiting = set(tasks)
            while waiting and not deadline.done():
                done, _ = await asyncio.wait({*waiting, deadline}, return_when=asyncio.FIRST_COMPLETED)
                waiting -= done
            for task, (provider, section) in tasks.items():
                section.problems += _failures(task, provider, incident, timeout)
        finally:
            for task in (*tasks, deadline):
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def _combine(self, context: IncidentContext) -> None:
        """What needs both providers: Sentry issues new since the last deploy, a suspect deploy."""
        railway: RailwayContext | None = context.railway
        sentry: SentryContext | None = context.sentry
        deploy = railway.last_deploy if railway else None
        if deploy is None:
            return
        if sentry is not None:
            mark_new_since(sentry.issues, finished(deploy))
        window = timedelta(seconds=self.section.suspect_window)
        context.suspect_deploy = context.detected_at - finished(deploy) <= window


def _failures(task: "asyncio.Task[None]", provider: Provider, incident: Incident, timeout: float) -> list[str]:
    """What to say of a provider that did not finish in time, or failed on a bug of ours."""
    if not task.done():
        steps = sorted(provider.steps) or [""]  # "" is the provider's main step
        log.warning("context.timed_out", vendor=provider.name, incident=incident.id, steps=steps)
        return [f"{step + ': ' if step else ''}no answer within {format_duration(timeout)}" for step in steps]
    if task.exception() is not None:
        log.error("context.provider_failed", vendor=provider.name, incident=incident.id, error=repr(task.exception()))
        return ["failed (see the monitor's log)"]
    return []
