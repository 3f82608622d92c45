"""The daemon: wires config, scheduler, incidents, dispatcher and server, and owns their lifetimes."""

import asyncio
import gc
import signal
from datetime import timedelta
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from pydantic import BaseModel, SecretStr

from alerting.base import Sink, SinkContext
from alerting.dispatcher import Dispatcher
from alerting.messages import use_templates_dir
from checks.base import Check, CheckContext
from checks.heartbeat.pings import SqlitePingLedger
from monitor import __version__, registry, systemd
from monitor.clock import Clock, SystemClock
from monitor.config import Config, ConfigError, MaintenanceWindow, load_config
from monitor.connectivity import ConnectivityProbe
from monitor.context.api import add_context_routes
from monitor.context.service import ContextService
from monitor.history.api import add_history_routes
from monitor.history.service import History
from monitor.history.store import SqliteHistoryStore
from monitor.incident_log import IncidentLog
from monitor.incidents import IncidentEvent, IncidentManager
from monitor.metrics import MonitorMetrics
from monitor.model import Incident, Severity, Status
from monitor.notifier import Notifier
from monitor.ping_api import add_ping_routes
from monitor.postmortem import write_draft
from monitor.runner import RunResult
from monitor.scheduler import MAX_START_SPREAD_SECONDS, Scheduler
from monitor.scrub import register_secret
from monitor.secrets import EnvSecret
from monitor.server import HEALTHY_HEARTBEAT_AGE_SECONDS, build_app
from monitor.status_page import LastRun
from monitor.status_routes import add_status_routes
from monitor.store import Silence, SqliteStore, prune_expired
from monitor.store_guard import GuardedStore
from monitor.wording import counted

log = structlog.get_logger("monitor.daemon")

TICK_SECONDS = 1.0
MAINTENANCE_SECONDS = 60.0
"""How often finished outbox rows and resolved incidents past `[monitor] retention` are pruned."""
CONNECTIVITY_CODE = "connectivity"
STATE_STORE_CODE = "state_store"


def register_secrets(config: Config) -> None:
    """Hand every secret value of the config to the scrubber (an `*_env` value registers itself
    when it is read; a secret written in the file, such as a dsn, does not)."""

    def collect(value: Any) -> None:
        if isinstance(value, EnvSecret):
            register_secret(value.value())
        elif isinstance(value, SecretStr):
            register_secret(value.get_secret_value())
        elif isinstance(value, dict):
            for item in value.values():
                collect(item)
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                collect(getattr(value, name))

    for model in (config.settings.server, *config.checks.values(), *config.sinks.values()):
        collect(model)


def http_session(concurrency: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency, ttl_dns_cache=60),
        timeout=aiohttp.ClientTimeout(total=None),
        headers={"User-Agent": f"health-monitor/{__version__}"},
    )


class Daemon:
    def __init__(self, config: Config, clock: Clock | None = None, overrides: dict[str, Any] | None = None) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.overrides = overrides or {}
        self.metrics = MonitorMetrics(config.server.duration_metric, config.server.duration_buckets)
        self.ready = False
        self._stop = asyncio.Event()
        self._reloading: asyncio.Task[None] | None = None
        self._reload_again = False
        self._maintainer: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._history_flusher: asyncio.Task[None] | None = None
        self._refreshing: dict[str, asyncio.Task[None]] = {}
        self._refreshed_at: dict[str, float] = {}
        self.last_runs: dict[str, LastRun] = {}
        """Each check's latest result, for the status page."""
        register_secrets(config)

    # The server reads these.
    store: GuardedStore
    scheduler: Scheduler

    def heartbeat_age(self) -> float:
        return self.clock.monotonic() - self.scheduler.last_heartbeat

    @property
    def store_problem(self) -> str | None:
        """Why the state store cannot be written, while it cannot."""
        return self.store.problem if hasattr(self, "store") else None

    def request_stop(self) -> None:
        self._stop.set()

    def request_reload(self) -> None:
        """SIGHUP: reload now, or, during a reload, once more when it ends (so that the file
        as last written is the one that runs); any number of signals meanwhile make one."""
        if self._reloading is None or self._reloading.done():
            self._reloading = asyncio.create_task(self._reload_until_current(), name="config:reload")
        else:
            self._reload_again = True

    async def _reload_until_current(self) -> None:
        while True:
            self._reload_again = False
            await self.reload()
            if not self._reload_again:
                return

    async def run(self, handle_signals: bool = True) -> None:
        if handle_signals:
            self._install_signal_handlers()
        use_templates_dir(self.config.settings.alerting.templates_dir)
        path = self.config.monitor.state_path
        self.store = GuardedStore(SqliteStore(path), self.metrics, self.clock, path=path)
        self.http = http_session(self.config.monitor.concurrency)
        self.heartbeats = SqlitePingLedger(path)
        self.history = History(SqliteHistoryStore(path), self.clock, self._holds, self.metrics.checks.set_uptime)
        self.incidents = IncidentManager(
            self.store, IncidentLog(self.config.monitor.incident_log), self.clock, self.config
        )
        self._refresh_incident_gauges()
        self.dispatcher = Dispatcher(
            self._build_sinks(self.config), self.store, self.metrics, self.clock,
            group_at=self.config.settings.alerting.storm_threshold,
        )
        self.dispatcher.resume()
        self.notifier = Notifier(self.config, self.dispatcher, self.metrics, self.clock, self._write_postmortem)
        self.context = ContextService(self.config, self.incidents, self.http, self.clock, self.notifier.publish)
        self._publish(self.incidents.unannounced_pages())
        self.connectivity = self._connectivity_probe(self.config)
        self.scheduler = Scheduler(self.clock, self.metrics, self.config.monitor.concurrency, self._on_result)
        app = build_app(self)
        add_context_routes(app, self)
        add_ping_routes(app, self)
        add_history_routes(app, self)
        add_status_routes(app, self)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.config.server.host, self.config.server.port)
            await site.start()
            self.scheduler.start()
            for name in self.config.checks:
                await self._start_check(self._create_check(name, self.config), self.config)
            self._ticker = asyncio.create_task(self._tick_forever(), name="incidents:tick")
            self._maintainer = asyncio.create_task(self._maintain_forever(), name="store:maintenance")
            await self.history.flush(self.config.checks)  # the uptimes kept from before, at once
            self._history_flusher = asyncio.create_task(
                self.history.flush_forever(lambda: self.config.checks), name="history:flush"
            )
            # What start-up and the first runs build (config models, checks, tasks, connections,
            # per-check state) lives as long as the process: kept out of the collector's sight,
            # each full collection scans less (at 10,000 checks it stalled the loop 100-200 ms).
            gc.freeze()
            asyncio.get_running_loop().call_later(self._first_runs_seconds(), gc.freeze)
            self.ready = True
            log.info(
                "daemon.started",
                version=__version__,
                listen=self.config.server.listen,
                checks=len(self.config.checks),
                sinks=len(self.config.sinks),
                open_incidents=len(self.incidents.open_incidents),
            )
            systemd.ready(status=self._systemd_status())
            self._start_watchdog()
            await self._stop.wait()
        finally:
            await self._shutdown(runner)

    async def reload(self) -> None:
        """SIGHUP: systemd hears RELOADING=1 first and READY=1 once done, even when the new config is rejected."""
        systemd.reloading(status="reloading the configuration")
        try:
            await self._reload()
        finally:
            systemd.ready(status=self._systemd_status())

    async def _reload(self) -> None:
        try:
            new = load_config(self.config.path, self.overrides)
        except ConfigError as exc:
            log.error("config.reload_rejected", problems=exc.problems, keeping="the running configuration")
            return
        old = self.config
        register_secrets(new)
        changed = {name for name in old.checks if new.checks.get(name) != old.checks[name]}
        # Everything new is built before anything is swapped: a check or sink that cannot be
        # built leaves the running configuration whole.
        built: list[Check] = []
        try:
            for name in new.checks:
                if name in changed or name not in old.checks:
                    built.append(self._create_check(name, new))
            kept = {n: s for n, s in self.dispatcher.sinks.items() if new.sinks.get(n) == old.sinks.get(n)}
            sinks = self._build_sinks(new, keep=kept)
        except Exception as exc:  # noqa: BLE001 - a plugin may raise anything; the old config stays
            for check in built:
                await check.aclose()
            problem = f"{type(exc).__name__}: {exc}"
            log.error("config.reload_rejected", problems=[problem], keeping="the running configuration")
            return
        use_templates_dir(new.settings.alerting.templates_dir)
        for name in changed:
            await (await self.scheduler.remove(name)).aclose()
            if name not in new.checks:
                self.metrics.forget_check(name)
                self.last_runs.pop(name, None)
        self.config = new
        for check in built:
            await self._start_check(check, new)
        self.dispatcher.replace_sinks(sinks)
        self.dispatcher.group_at(new.settings.alerting.storm_threshold)
        self.notifier.config = new
        self.context.update_config(new)
        self.connectivity = self._connectivity_probe(new)
        self._publish(self.incidents.update_config(new))
        for key in ("listen", "duration_metric", "duration_buckets"):
            if getattr(new.server, key) != getattr(old.server, key):
                log.warning("config.reload_needs_restart", key=f"server.{key}", running=getattr(old.server, key))
        log.info("config.reloaded", checks=len(new.checks), sinks=len(new.sinks))

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.request_stop)
        loop.add_signal_handler(signal.SIGINT, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)

    def _create_check(self, name: str, config: Config) -> Check:
        context = CheckContext(self.http, self.clock, self.metrics, self.heartbeats)
        return registry.create_check(name, config.checks[name], context)

    async def _start_check(self, check: Check, config: Config) -> None:
        check_config = config.checks[check.name]
        try:
            await check.start()
        except Exception as exc:  # noqa: BLE001 - a check that cannot start still runs and reports why
            log.warning("check.start_failed", check=check.name, error=f"{type(exc).__name__}: {exc}")
        assert check_config.interval is not None and check_config.timeout is not None
        self.scheduler.add(check, check_config.interval, check_config.timeout)

    def _build_sinks(self, config: Config, keep: dict[str, Sink] | None = None) -> dict[str, Sink]:
        keep = keep or {}
        context = SinkContext(self.http, self.clock)
        return {
            name: keep.get(name) or registry.create_sink(name, sink_config, context)
            for name, sink_config in config.sinks.items()
        }

    def acknowledge(self, incident_id: int, by: str, note: str) -> Incident | None:
        incident, events = self.incidents.acknowledge(incident_id, by, note)
        self._publish(events)
        return incident

    @property
    def api_token(self) -> str | None:
        token = self.config.server.api_token_env
        return token.value() if token else None

    async def _on_result(self, result: RunResult) -> None:
        finished = self.clock.now()
        self.last_runs[result.check] = LastRun(result, finished)
        now = finished.timestamp()
        if result.status is not Status.OK and not await self._network_reachable():
            self.metrics.record_run(result.check, Status.UNKNOWN, result.duration, now)
            return
        self.metrics.record_run(result.check, result.status, result.duration, now)
        self.history.record(result.check, finished, result.status <= Status.WARNING, result.duration)
        self._publish(self.incidents.observe(result.check, result.findings))
        self.metrics.checks.set_flapping(result.check, self.incidents.is_flapping(result.check))

    async def _network_reachable(self) -> bool:
        """Asked before a failure counts: while the monitor itself is cut off, nothing is concluded."""
        if self.connectivity is None:
            return True
        reachable = await self.connectivity.reachable()
        self.metrics.monitor_online.set(int(reachable))
        if reachable:
            self._publish(self.incidents.clear_monitor_incident(CONNECTIVITY_CODE, "the monitor reaches the network"))
        else:
            summary = (
                f"monitor cannot reach the network ({self.connectivity.display} does not answer): "
                "findings are recorded as unknown and no incident opens until it is back"
            )
            self._publish(self.incidents.raise_monitor_incident(CONNECTIVITY_CODE, summary, Severity.P2))
        return reachable

    def _connectivity_probe(self, config: Config) -> ConnectivityProbe | None:
        target = config.monitor.connectivity_check
        return ConnectivityProbe(target, self.http, self.clock) if target else None

    async def _tick_forever(self) -> None:
        while True:
            try:
                self._watch_store()
                self.context.apply_recorded_actions()
                self._publish(self.incidents.tick())
                self.notifier.flush()
                self._refresh_due_sinks()
            except Exception:
                log.exception("incidents.tick_failed")
            await self.clock.sleep_until(self.clock.monotonic() + TICK_SECONDS)

    def _holds(self) -> tuple[list[Silence], list[MaintenanceWindow]]:
        """What history sets apart from uptime, read once per flush."""
        return self.store.silences(self.clock.now()), self.config.settings.maintenance

    def _watch_store(self) -> None:
        """Write what waits; while the store cannot be written, one incident about the monitor
        itself says so (delivered from memory to every sink)."""
        self.store.retry()
        problem = self.store.problem
        if problem is None:
            self._publish(self.incidents.clear_monitor_incident(STATE_STORE_CODE, "the state store takes writes again"))
            return
        summary = (
            f"the state store {self.store.path} cannot be written ({problem}): notifications are "
            "delivered from memory and written once it can be; a restart meanwhile may lose them"
        )
        self._publish(self.incidents.raise_monitor_incident(STATE_STORE_CODE, summary, Severity.P2))

    async def _maintain_forever(self) -> None:
        while True:
            await self.clock.sleep_until(self.clock.monotonic() + MAINTENANCE_SECONDS)
            try:
                await self.prune()
            except Exception:
                log.exception("store.maintenance_failed")

    async def prune(self) -> int:
        """Delete what `[monitor] retention` no longer keeps (see prune_expired)."""
        before = self.clock.now() - timedelta(seconds=self.config.monitor.retention)
        pruned = await prune_expired(self.store, before)
        if pruned:
            log.info("store.pruned", rows=pruned, older_than=before.isoformat())
        return pruned

    def _refresh_due_sinks(self) -> None:
        """Sinks that forget what is not repeated (Alertmanager) hear the open incidents again
        every `refresh_interval`, and once at start; each refresh runs in its own task."""
        now = self.clock.monotonic()
        for name, sink in self.dispatcher.sinks.items():
            interval = sink.refresh_interval
            running = self._refreshing.get(name)
            if interval is None or (running is not None and not running.done()):
                continue
            if now - self._refreshed_at.get(name, -interval) >= interval:
                self._refreshed_at[name] = now
                self._refreshing[name] = asyncio.create_task(self._refresh(sink), name=f"sink:{name}:refresh")

    async def _refresh(self, sink: Sink) -> None:
        try:
            await sink.refresh(self.incidents.open_incidents, monitor=self.config.monitor.name)
        except Exception as exc:  # noqa: BLE001 - the next refresh tries again
            log.warning("sink.refresh_failed", sink=sink.name, error=str(exc))

    def _publish(self, events: list[IncidentEvent]) -> None:
        if events:
            self.context.publish(events)
            self._refresh_incident_gauges()

    def _write_postmortem(self, event: IncidentEvent) -> None:
        write_draft(event.incident, self.store, self.config.monitor.name, self.clock.now())

    def _refresh_incident_gauges(self) -> None:
        for severity, count in self.incidents.open_counts().items():
            self.metrics.incidents_open.labels(severity=severity.value).set(count)

    def _first_runs_seconds(self) -> float:
        """By then every check has started (spread over up to 10 s) and run at least twice."""
        longest = max((check.interval or 0.0 for check in self.config.checks.values()), default=0.0)
        return MAX_START_SPREAD_SECONDS + 2 * longest

    def _start_watchdog(self) -> None:
        """WATCHDOG=1 every WatchdogSec/2 while the scheduler's heartbeat is fresh; none outside systemd."""
        interval = systemd.watchdog_interval()
        if interval is not None:
            self._watchdog = asyncio.create_task(
                systemd.watchdog_loop(interval, self._scheduler_alive), name="systemd:watchdog"
            )

    def _scheduler_alive(self) -> bool:
        return self.heartbeat_age() <= HEALTHY_HEARTBEAT_AGE_SECONDS

    def _systemd_status(self) -> str:
        config = self.config
        checks, sinks = counted(len(config.checks), "check"), counted(len(config.sinks), "sink")
        return f"{checks}, {sinks}, listening on {config.server.listen}"

    async def _shutdown(self, runner: web.AppRunner) -> None:
        systemd.stopping(status="stopping")
        for task in (self._watchdog, self._ticker, self._maintainer, self._history_flusher, *self._refreshing.values()):
            if task is not None:
                task.cancel()
        started, self.ready = self.ready, False
        if started:  # a failed start is reported once, by the caller
            log.info("daemon.stopping")
        for check in await self.scheduler.stop():
            await check.aclose()
        await self.context.close()
        self.incidents.flush()
        await self.dispatcher.drain(self.config.monitor.shutdown_grace)
        for sink in self.dispatcher.sinks.values():
            await sink.aclose()
        await runner.cleanup()
        await self.http.close()
        await self.history.flush(self.config.checks)
        self.history.store.close()
        self.store.close()
        self.heartbeats.close()
        if started:
            log.info("daemon.stopped")
