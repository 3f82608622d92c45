"""The daemon's side of the context feature, between the incident core and the notifier.

The initial alert carries the context: an OPENED event of a covered check waits while its
context is gathered, at most `[context] timeout` (the gatherer cuts slow vendors off), and
the events of the same incident that follow it wait behind it, so their order holds.
Change events and remediation outcomes reach timelines through the pipeline (and the incident core), so the
daemon stays the one writer of incidents."""

import asyncio
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING

import aiohttp
import structlog

from monitor.clock import Clock
from monitor.config import Config
from monitor.context import actions
from monitor.context.changes import STARTING_STATUSES, Change
from monitor.context.config import ContextSection
from monitor.context.gather import ContextGatherer
from monitor.context.journal import Journal
from monitor.context.model import IncidentContext
from monitor.context.render import timeline_text
from monitor.incident_core import IncidentEvent, IncidentEventKind
from monitor.model import Incident, TimelineEvent
from monitor.store import StoreUnavailable

if TYPE_CHECKING:
    from monitor.pipeline import Pipeline

log = structlog.get_logger("monitor.context")

CHANGES_BEFORE_OPEN = timedelta(hours=1)


class ContextService:
    def __init__(
        self, config: Config, pipeline: "Pipeline | None", http: aiohttp.ClientSession, clock: Clock, journal: Journal
    ) -> None:
        self._pipeline = pipeline
        """The leader's pipeline; None on a standby, which records changes and actions in the
        journal for the leader and notes nothing on incidents itself."""
        self._http = http
        self._clock = clock
        self._gatherer = ContextGatherer(config.settings.context, http, clock)
        self.journal = journal
        self._waiting: dict[int, list[IncidentEvent]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def section(self) -> ContextSection:
        return self._gatherer.section

    def lead(self, pipeline: "Pipeline | None") -> None:
        """This replica leads with `pipeline` now, or (None) no longer leads."""
        self._pipeline = pipeline

    def update_config(self, config: Config) -> None:
        self._gatherer = ContextGatherer(config.settings.context, self._http, self._clock)

    # Pages

    def route(self, events: list[IncidentEvent]) -> list[IncidentEvent]:
        """The events that go out now; the pages of covered checks (and what follows them) wait
        for their context and are released to the pipeline once it is gathered."""
        ready = []
        for event in events:
            incident = event.incident
            if incident.id in self._waiting:
                self._waiting[incident.id].append(event)
            elif self._wants_context(event):
                self._waiting[incident.id] = [event]
                task = asyncio.create_task(self._gather_then_publish(incident), name=f"context:{incident.id}")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            else:
                ready.append(event)
        return ready

    def _wants_context(self, event: IncidentEvent) -> bool:
        incident = event.incident
        return (
            event.kind is IncidentEventKind.OPENED
            and incident.context is None
            and self._gatherer.covers(incident.check)
        )

    async def _gather_then_publish(self, incident: Incident) -> None:
        context: IncidentContext | None = None
        try:
            context = await self._gatherer.gather(incident)
            if context is not None:
                await self._attach(incident, context)
        except Exception:  # a bug here must not cost the page
            log.exception("context.gather_failed", incident=incident.id)
        finally:
            events = self._waiting.pop(incident.id, [])
            if context is not None:
                events = [replace(e, incident=e.incident.model_copy(update={"context": context})) for e in events]
            if events and self._pipeline is not None:  # else the next leader pages it (announce_unannounced)
                await self._pipeline.release(events)

    async def _attach(self, incident: Incident, context: IncidentContext) -> None:
        earlier = [
            TimelineEvent(at=change.at, kind="change", text=change.describe())
            for change in await self._changes_before(incident)
        ]
        if self._pipeline is not None:
            await self._pipeline.attach_context(incident.id, context, timeline_text(context), earlier)

    async def _changes_before(self, incident: Incident) -> list[Change]:
        entry = self.section.railway_for(incident.check)
        if entry is None:
            return []
        since = incident.opened_at - CHANGES_BEFORE_OPEN
        return await self.journal.changes(since, until=incident.opened_at, service_id=entry[1].service_id)

    # Change events

    async def record_change(self, change: Change) -> list[int]:
        """Keep a change; note it on the open incidents of its service. The incident ids noted.
        StoreUnavailable when the change could not be kept (nothing is noted then)."""
        first_seen = await self.journal.record_change(change)
        if first_seen and change.status in STARTING_STATUSES:
            text = f"deploy {change.commit_hash[:7] if change.commit_hash else change.deployment_id} started"
        else:
            text = change.describe()
        noted: list[int] = []
        if self._pipeline is None:
            return noted
        for incident in self._pipeline.incidents.open_incidents:
            entry = self.section.railway_for(incident.check)
            if entry is None or entry[1].service_id != change.service_id or change.at < incident.opened_at:
                continue
            await self._pipeline.annotate(incident.id, "change", text, at=change.at)
            noted.append(incident.id)
        return noted

    # Remediation

    async def run_action(self, incident: Incident, action: str, to: str | None, by: str) -> tuple[bool, str]:
        """An action asked for through the API: performed here, recorded at once."""
        client = actions.client_for(self.section, incident, self._http)
        chosen = await actions.plan(client, action, to)
        succeeded, text = await actions.run(client, chosen, by)
        await self.journal.record_action(incident.id, self._clock.now(), by, text)
        await self.apply_recorded_actions()
        return succeeded, text

    async def apply_recorded_actions(self) -> None:
        """Actions the CLI ran (and recorded) go onto their incidents' timelines and incidents.log.
        A state store that cannot be read now is tried again at the next tick, and holds up nothing else."""
        if self._pipeline is None:
            return  # the leader applies them at its next tick
        try:
            for record in await self.journal.unapplied_actions():
                await self._pipeline.annotate(record.incident_id, "action", record.text, at=record.at)
                await self.journal.mark_action_applied(record.seq)
        except StoreUnavailable as exc:
            log.warning("context.actions_not_applied", error=str(exc))

    async def close(self) -> None:
        """Cut short the gathering still under way: its pages go out without waiting further."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
