"""The recorder: one batch of the incident core's decisions written in one transaction, then
what follows the commit.

For each batch, the notifications the notifier composed for it get their outbox rows, one
per sink that will hear them, and `store.record` writes them with the incidents opened and
changed, their timelines, the acknowledgements applied and the check memories that changed,
all or nothing. Only after the commit are the incidents.log lines written, the post-mortem
drafts of resolved incidents written, and the notifications handed to the sinks' queues. A
crash before the commit loses the batch's decisions, never half of them; a crash after it
loses at most log lines and drafts, and the deliveries resume from the outbox at the next start.

Initial alerts the notifier holds during a storm, and pages held while their diagnosis
context is gathered, are recorded in the batch that releases them; a crash in between is
covered at the next start by the pipeline's `announce_unannounced` (a paged incident with
nothing in the outbox has its initial alert sent)."""

import asyncio

import structlog

from monitor.clock import Clock
from monitor.dispatcher import Addressed, Dispatcher, Outgoing
from monitor.incident_core import IncidentEvent, IncidentEventKind
from monitor.incident_log import IncidentLog
from monitor.postmortem import write_draft
from monitor.store import Epoch, RecordOutcome, StateChange, StateStore, no_epoch

log = structlog.get_logger("monitor.recorder")

class Recorder:
    def __init__(
        self,
        store: StateStore,
        dispatcher: Dispatcher,
        incident_log: IncidentLog,
        monitor: str,
        clock: Clock,
        epoch: Epoch = no_epoch,
    ) -> None:
        self._store = store
        self._dispatcher = dispatcher
        self.incident_log = incident_log
        self.monitor = monitor
        self._clock = clock
        self._epoch = epoch

    async def record(
        self, change: StateChange, events: list[IncidentEvent], outgoing: list[Outgoing]
    ) -> RecordOutcome:
        """Write `change` with the outbox rows of `outgoing` in one transaction, then the log
        lines and drafts of `events`, then queue `outgoing`. For each incident another writer
        had opened first (`RecordOutcome.adopted`), nothing of its own is sent. The decisions
        are the core's already: a caller cancelled meanwhile (a check's task at shutdown)
        does not stop their recording."""
        return await asyncio.shield(self._record(change, events, outgoing))

    async def _record(
        self, change: StateChange, events: list[IncidentEvent], outgoing: list[Outgoing]
    ) -> RecordOutcome:
        addressed = self._dispatcher.address(outgoing)
        change.outbox.extend(item.outbox_entry() for item in addressed)
        change.epoch = self._epoch()
        outcome = await self._store.record(change) if change else RecordOutcome()
        self._write_log(events, outcome)
        for event in events:
            if event.kind is IncidentEventKind.RESOLVED and event.incident.id not in outcome.adopted:
                await write_draft(event.incident, self._store, self.monitor, self._clock.now())
        await self._dispatcher.hand_over(_not_adopted(addressed, outcome))
        return outcome

    def _write_log(self, events: list[IncidentEvent], outcome: RecordOutcome) -> None:
        try:
            for event in events:
                if event.log is not None and event.incident.id not in outcome.adopted:
                    what, text = event.log
                    self.incident_log.write(event.at, what, event.incident, text)
        except OSError as exc:  # a full disk: the incidents are recorded and their pages go out
            log.error("incident_log.not_written", path=str(self.incident_log.path), error=str(exc))


def _not_adopted(addressed: list[Addressed], outcome: RecordOutcome) -> list[Addressed]:
    if not outcome.adopted:
        return addressed
    return [item for item in addressed if item.notification.incident.id not in outcome.adopted]
