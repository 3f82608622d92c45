"""The incident flow, wired once: check results and time in, notifications out.

    check results, time -> incident core -> route -> notifier -> recorder -> state store -> sinks

`run` (monitor/daemon.py), `once --notify` (monitor/commands.py) and the tests' harness
all build it through `Pipeline.open` (each opens the store, guards it and closes it), so each
gets the same connectivity guard (while the monitor cannot reach `[monitor]
connectivity_check`, a failing run counts as unknown and concludes nothing, and one
incident about the monitor says so), the same run metrics, and the same watch over the
state store (while it cannot be written, notifications go out from memory and one incident
about the monitor says so; see monitor/store_guard.py).

The incident core (monitor/incident_core.py) decides, without I/O; each batch of its
decisions is recorded in one transaction by the recorder (monitor/recorder.py), with the
outbox rows of the notifications that go out now, and only then are those handed to the
sinks' queues. The store is guarded (monitor/store_guard.py): while it cannot be written
the change waits in memory and the notifications still go out.

`route` is where the events people hear of go on their way to the notifier: the events that
go out now (all of them by default), the others held for a while first (the daemon's
diagnosis context) and handed back with `release`. Held pages get their outbox rows in the
batch that releases them; a crash in between is covered at the next start by
`announce_unannounced`.

`epoch` gives the leadership epoch stamped on every change (issue 14's fencing; None for
a store no replica shares)."""

from collections.abc import Callable, Iterable
from datetime import datetime
from itertools import chain

import aiohttp

from alerting.base import Sink
from monitor.clock import Clock
from monitor.config import Config
from monitor.connectivity import ConnectivityProbe
from monitor.context.model import IncidentContext
from monitor.dispatcher import Dispatcher, Outgoing
from monitor.incident_core import IncidentCore, IncidentEvent
from monitor.incident_log import IncidentLog
from monitor.metrics import MonitorMetrics
from monitor.model import Incident, Severity, Status, TimelineEvent
from monitor.notifier import Notifier
from monitor.recorder import Recorder
from monitor.runner import RunResult
from monitor.store import Epoch, StateChange, no_epoch
from monitor.store_guard import GuardedStore

CONNECTIVITY_CODE = "connectivity"
STATE_STORE_CODE = "state_store"


class Pipeline:
    def __init__(
        self,
        config: Config,
        store: GuardedStore,
        incidents: IncidentCore,
        sinks: dict[str, Sink],
        metrics: MonitorMetrics,
        clock: Clock,
        http: aiohttp.ClientSession | None,
        epoch: Epoch = no_epoch,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.clock = clock
        self._http = http
        self.store = store
        self.incidents = incidents
        self.dispatcher = Dispatcher(
            sinks, self.store, metrics, clock, group_at=config.settings.alerting.storm_threshold,
            holder=config.monitor.node_name, epoch=epoch,
        )
        self.notifier = Notifier(config, metrics, clock)
        log = IncidentLog(config.monitor.incident_log)
        self.recorder = Recorder(store, self.dispatcher, log, config.monitor.name, clock, epoch)
        self.route: Callable[[list[IncidentEvent]], list[IncidentEvent]] = lambda events: events
        self.connectivity = self._connectivity_probe(config)
        self.refresh_incident_gauges()

    @classmethod
    async def open(
        cls,
        config: Config,
        store: GuardedStore,
        sinks: dict[str, Sink],
        metrics: MonitorMetrics,
        clock: Clock,
        http: aiohttp.ClientSession | None,
        epoch: Epoch = no_epoch,
    ) -> "Pipeline":
        """The pipeline on what the store kept: open incidents, silences, the last incident id,
        the checks' memories, and the deliveries a previous run left pending (queued again)."""
        incidents = IncidentCore(
            config,
            open_incidents=await store.open_incidents(),
            silences=await store.silences(clock.now()),
            last_incident_id=await store.last_incident_id(),
            memories=await store.check_memories(),
        )
        pipeline = cls(config, store, incidents, sinks, metrics, clock, http, epoch)
        await pipeline.dispatcher.resume()
        return pipeline

    async def update_config(self, config: Config) -> None:
        """Adopt a reloaded config (the sinks are the caller's to replace)."""
        self.config = config
        self.dispatcher.group_at(config.settings.alerting.storm_threshold)
        self.notifier.config = config
        self.connectivity = self._connectivity_probe(config)
        self.recorder.monitor = config.monitor.name
        await self.commit(self.incidents.update_config(config, self.clock.now()))

    # Results and time

    async def announce_unannounced(self) -> None:
        """At start: open incidents paged but with nothing in the outbox (a crash, or a storm
        group or a page held for context, came between the page and its notification) have
        their initial alert sent again, under the same notification id, so never twice."""
        now = self.clock.now()
        events = [
            self.incidents.initial_alert(incident, now)
            for incident in self.incidents.open_incidents
            if incident.paged and not await self.store.deliveries_for(incident.id)
        ]
        if events:
            await self.dispatcher.submit(self.notifier.publish(events))

    async def on_result(self, result: RunResult, finished: datetime | None = None) -> bool:
        """True when the run counted; False while the monitor itself is cut off (nothing concluded).
        `finished`: when the run ended (now, unless the caller read the clock already)."""
        now = finished or self.clock.now()
        status = result.status
        if status is not Status.OK and not await self._network_reachable():
            self.metrics.record_run(result.check, Status.UNKNOWN, result.duration, now.timestamp())
            return False
        self.metrics.record_run(result.check, status, result.duration, now.timestamp())
        await self.commit(self.incidents.observe(result.check, result.findings, now))
        self.metrics.checks.set_flapping(result.check, self.incidents.is_flapping(result.check))
        return True

    async def tick(self, flush_now: bool = False) -> None:
        """What the daemon does every second: write what waits, then what time alone decides."""
        await self._watch_store()
        now = self.clock.now()
        silences = await self.store.silences(now)
        requests = await self.store.unapplied_acknowledgements()
        events = self.incidents.tick(now, silences, requests)
        await self._record(self.incidents.take_change(), events, self.notifier.flush(now=flush_now))

    async def commit(self, events: list[IncidentEvent]) -> None:
        """Record what the incident core decided, with the notifications of `events` that go out
        now; a run that changed nothing (the common case) costs nothing more."""
        if events or self.incidents.changed:
            await self._record(self.incidents.take_change(), events)

    async def release(self, events: list[IncidentEvent]) -> None:
        """Events `route` held, handed back: their notifications are recorded and go out."""
        await self.recorder.record(self.incidents.take_change(), [], self.notifier.publish(events))

    async def _record(
        self, change: StateChange, events: list[IncidentEvent], also: Iterable[Outgoing] = ()
    ) -> None:
        """The heard events through `route` and the notifier, then the recorder, with `also`
        (notifications released now) in the same transaction."""
        heard = [event for event in events if event.heard]
        outgoing = self.notifier.publish(self.route(heard)) if heard else []
        outcome = await self.recorder.record(change, events, list(chain(outgoing, also)))
        if outcome.adopted:
            self.incidents.adopt(outcome.adopted)
        if events:
            self.refresh_incident_gauges()

    # Changes from outside the check flow

    async def acknowledge(self, incident_id: int, by: str, note: str) -> Incident | None:
        incident, events = self.incidents.acknowledge(incident_id, by, self.clock.now(), note)
        await self.commit(events)
        return incident

    async def annotate(self, incident_id: int, kind: str, text: str, at: datetime | None = None) -> Incident | None:
        """A timeline entry and an incidents.log line on an open or resolved incident; None when unknown."""
        found = self.incidents.find_open(incident_id) or await self.store.get_incident(incident_id)
        if found is None:
            return None
        event = self.incidents.annotate(found, kind, text, at or self.clock.now())
        await self.commit([event])
        return event.incident

    async def attach_context(
        self, incident_id: int, context: IncidentContext, text: str, earlier: list[TimelineEvent]
    ) -> Incident | None:
        found = self.incidents.find_open(incident_id) or await self.store.get_incident(incident_id)
        if found is None:
            return None
        events = self.incidents.attach_context(found, context, text, earlier, self.clock.now())
        await self.commit(events)
        return events[0].incident if events else None

    async def close(self, grace: float, close_sinks: bool = True) -> None:
        """Write what further failing runs changed, give queued notifications `grace` to go
        out, close the sinks unless a next term reuses them (the store is its opener's to close)."""
        self.incidents.flush()
        await self.commit([])
        await self.dispatcher.drain(grace)
        if close_sinks:
            for sink in self.dispatcher.sinks.values():
                await sink.aclose()

    # The guards

    async def _network_reachable(self) -> bool:
        """Asked before a failure counts: while the monitor itself is cut off, nothing is concluded."""
        if self.connectivity is None:
            return True
        reachable = await self.connectivity.reachable()
        self.metrics.monitor_online.set(int(reachable))
        if reachable:
            back = "the monitor reaches the network"
            await self.commit(self.incidents.clear_monitor_incident(CONNECTIVITY_CODE, back, self.clock.now()))
        else:
            summary = (
                f"monitor cannot reach the network ({self.connectivity.display} does not answer): "
                "findings are recorded as unknown and no incident opens until it is back"
            )
            await self.commit(
                self.incidents.raise_monitor_incident(CONNECTIVITY_CODE, summary, Severity.P2, self.clock.now())
            )
        return reachable

    def _connectivity_probe(self, config: Config) -> ConnectivityProbe | None:
        target = config.monitor.connectivity_check
        if not target or self._http is None:
            return None
        return ConnectivityProbe(target, self._http, self.clock)

    async def _watch_store(self) -> None:
        """Write what waits; while the store cannot be written, one incident about the monitor
        itself says so (delivered from memory to every sink)."""
        await self.store.retry()
        problem = self.store.problem
        if problem is None:
            back = "the state store takes writes again"
            await self.commit(self.incidents.clear_monitor_incident(STATE_STORE_CODE, back, self.clock.now()))
            return
        summary = (
            f"the state store {self.store.display} cannot be written ({problem}): notifications are "
            "delivered from memory and written once it can be; a restart meanwhile may lose them"
        )
        await self.commit(
            self.incidents.raise_monitor_incident(STATE_STORE_CODE, summary, Severity.P2, self.clock.now())
        )

    def refresh_incident_gauges(self) -> None:
        for severity, count in self.incidents.open_counts().items():
            self.metrics.incidents_open.labels(severity=severity.value).set(count)
