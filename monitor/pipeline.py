"""The incident flow, wired once: check results and time in, notifications out.

    state store (guarded) -> IncidentManager -> route -> Notifier -> Dispatcher -> sinks

`run` (monitor/daemon.py), `once --notify` (monitor/commands.py) and the tests' harness
all build it through `Pipeline` (each opens the store, guards it and closes it), so each
gets the same connectivity guard (while the monitor cannot reach `[monitor]
connectivity_check`, a failing run counts as unknown and concludes nothing, and one
incident about the monitor says so), the same run metrics, and the same watch over the
state store (while it cannot be written, notifications go out from memory and one incident
about the monitor says so; see monitor/store_guard.py).

`route` is where events go on their way to the notifier: the notifier itself, or what holds
a page for a while first (the daemon's diagnosis context)."""

from collections.abc import Callable

import aiohttp

from alerting.base import Sink
from alerting.dispatcher import Dispatcher
from monitor.clock import Clock
from monitor.config import Config
from monitor.connectivity import ConnectivityProbe
from monitor.incident_log import IncidentLog
from monitor.incidents import IncidentEvent, IncidentManager
from monitor.metrics import MonitorMetrics
from monitor.model import Severity, Status
from monitor.notifier import Notifier
from monitor.postmortem import write_draft
from monitor.runner import RunResult
from monitor.store_guard import GuardedStore

CONNECTIVITY_CODE = "connectivity"
STATE_STORE_CODE = "state_store"


class Pipeline:
    def __init__(
        self,
        config: Config,
        store: GuardedStore,
        sinks: dict[str, Sink],
        metrics: MonitorMetrics,
        clock: Clock,
        http: aiohttp.ClientSession | None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.clock = clock
        self._http = http
        self.store = store
        self.incidents = IncidentManager(self.store, IncidentLog(config.monitor.incident_log), clock, config)
        self.dispatcher = Dispatcher(
            sinks, self.store, metrics, clock, group_at=config.settings.alerting.storm_threshold
        )
        self.dispatcher.resume()
        self.notifier = Notifier(config, self.dispatcher, metrics, clock, self._write_postmortem)
        self.route: Callable[[list[IncidentEvent]], None] = self.notifier.publish
        self.connectivity = self._connectivity_probe(config)
        self.refresh_incident_gauges()

    def update_config(self, config: Config) -> None:
        """Adopt a reloaded config (the sinks are the caller's to replace)."""
        self.config = config
        self.dispatcher.group_at(config.settings.alerting.storm_threshold)
        self.notifier.config = config
        self.connectivity = self._connectivity_probe(config)
        self.publish(self.incidents.update_config(config))

    # Results and time

    def announce_unannounced(self) -> None:
        """At start: pages a crash kept from their notification go out (see unannounced_pages)."""
        self.publish(self.incidents.unannounced_pages())

    async def on_result(self, result: RunResult) -> bool:
        """True when the run counted; False while the monitor itself is cut off (nothing concluded)."""
        now = self.clock.now().timestamp()
        if result.status is not Status.OK and not await self._network_reachable():
            self.metrics.record_run(result.check, Status.UNKNOWN, result.duration, now)
            return False
        self.metrics.record_run(result.check, result.status, result.duration, now)
        self.publish(self.incidents.observe(result.check, result.findings))
        self.metrics.checks.set_flapping(result.check, self.incidents.is_flapping(result.check))
        return True

    def tick(self, flush_now: bool = False) -> None:
        """What the daemon does every second: write what waits, then what time alone decides."""
        self._watch_store()
        self.publish(self.incidents.tick())
        self.notifier.flush(now=flush_now)

    def publish(self, events: list[IncidentEvent]) -> None:
        if events:
            self.route(events)
            self.refresh_incident_gauges()

    async def close(self, grace: float) -> None:
        """Write what further failing runs changed, give queued notifications `grace` to go
        out, close the sinks (the store is its opener's to close)."""
        self.incidents.flush()
        await self.dispatcher.drain(grace)
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
            self.publish(self.incidents.clear_monitor_incident(CONNECTIVITY_CODE, "the monitor reaches the network"))
        else:
            summary = (
                f"monitor cannot reach the network ({self.connectivity.display} does not answer): "
                "findings are recorded as unknown and no incident opens until it is back"
            )
            self.publish(self.incidents.raise_monitor_incident(CONNECTIVITY_CODE, summary, Severity.P2))
        return reachable

    def _connectivity_probe(self, config: Config) -> ConnectivityProbe | None:
        target = config.monitor.connectivity_check
        if not target or self._http is None:
            return None
        return ConnectivityProbe(target, self._http, self.clock)

    def _watch_store(self) -> None:
        """Write what waits; while the store cannot be written, one incident about the monitor
        itself says so (delivered from memory to every sink)."""
        self.store.retry()
        problem = self.store.problem
        if problem is None:
            self.publish(self.incidents.clear_monitor_incident(STATE_STORE_CODE, "the state store takes writes again"))
            return
        summary = (
            f"the state store {self.store.path} cannot be written ({problem}): notifications are "
            "delivered from memory and written once it can be; a restart meanwhile may lose them"
        )
        self.publish(self.incidents.raise_monitor_incident(STATE_STORE_CODE, summary, Severity.P2))

    def _write_postmortem(self, event: IncidentEvent) -> None:
        write_draft(event.incident, self.store, self.config.monitor.name, self.clock.now())

    def refresh_incident_gauges(self) -> None:
        for severity, count in self.incidents.open_counts().items():
            self.metrics.incidents_open.labels(severity=severity.value).set(count)
