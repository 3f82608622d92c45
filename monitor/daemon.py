"""The daemon: wires config, scheduler, incidents, dispatcher and server, and owns their lifetimes."""

import asyncio
import gc
import signal
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from pydantic import BaseModel, SecretStr

from alerting.base import Sink, SinkContext
from alerting.dispatcher import Dispatcher
from alerting.messages import use_templates_dir
from checks.base import CheckContext
from monitor import __version__, registry, systemd
from monitor.clock import Clock, SystemClock
from monitor.config import Config, ConfigError, load_config
from monitor.connectivity import ConnectivityProbe
from monitor.incident_log import IncidentLog
from monitor.incidents import IncidentEvent, IncidentManager
from monitor.logs import secret_masker
from monitor.metrics import MonitorMetrics
from monitor.model import Incident, Severity, Status
from monitor.notifier import Notifier
from monitor.postmortem import write_draft
from monitor.runner import RunResult
from monitor.scheduler import MAX_START_SPREAD_SECONDS, Scheduler
from monitor.secrets import EnvSecret
from monitor.server import HEALTHY_HEARTBEAT_AGE_SECONDS, build_app
from monitor.status_page import LastRun
from monitor.store import SqliteStore, StateStore

log = structlog.get_logger("monitor.daemon")

TICK_SECONDS = 1.0
CONNECTIVITY_CODE = "connectivity"


def config_secrets(config: Config) -> list[str]:
    """Every secret value the config read from the environment, for the log masker."""
    found: list[str] = []

    def collect(value: Any) -> None:
        if isinstance(value, EnvSecret):
            found.append(value.value())
        elif isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, dict):
            for item in value.values():
                collect(item)
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                collect(getattr(value, name))

    for model in (config.settings.server, *config.checks.values(), *config.sinks.values()):
        collect(model)
    return found


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
        self._watchdog: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._refreshing: dict[str, asyncio.Task[None]] = {}
        self._refreshed_at: dict[str, float] = {}
        self.last_runs: dict[str, LastRun] = {}
        """Each check's latest result, for the status page."""
        secret_masker.remember(config_secrets(config))

    # The server reads these.
    store: StateStore
    scheduler: Scheduler

    def heartbeat_age(self) -> float:
        return self.clock.monotonic() - self.scheduler.last_heartbeat

    def request_stop(self) -> None:
        self._stop.set()

    def request_reload(self) -> None:
        if self._reloading is None or self._reloading.done():
            self._reloading = asyncio.create_task(self.reload(), name="config:reload")

    async def run(self, handle_signals: bool = True) -> None:
        if handle_signals:
            self._install_signal_handlers()
        use_templates_dir(self.config.settings.alerting.templates_dir)
        self.store = SqliteStore(self.config.monitor.state_path)
        self.http = http_session(self.config.monitor.concurrency)
        self.incidents = IncidentManager(
            self.store, IncidentLog(self.config.monitor.incident_log), self.clock, self.config
        )
        self._refresh_incident_gauges()
        self.dispatcher = Dispatcher(self._build_sinks(self.config), self.store, self.metrics, self.clock)
        self.dispatcher.resume()
        self.notifier = Notifier(self.config, self.dispatcher, self.metrics, self.clock, self._write_postmortem)
        self._publish(self.incidents.unannounced_pages())
        self.connectivity = self._connectivity_probe(self.config)
        self.scheduler = Scheduler(self.clock, self.metrics, self.config.monitor.concurrency, self._on_result)
        runner = web.AppRunner(build_app(self), access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.config.server.host, self.config.server.port)
            await site.start()
            self.scheduler.start()
            for name in self.config.checks:
                await self._schedule(name, self.config)
            self._ticker = asyncio.create_task(self._tick_forever(), name="incidents:tick")
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
        secret_masker.remember(config_secrets(new))
        use_templates_dir(new.settings.alerting.templates_dir)
        for name in old.checks:
            if new.checks.get(name) != old.checks[name]:
                await (await self.scheduler.remove(name)).aclose()
                if name not in new.checks:
                    self.metrics.forget_check(name)
                    self.last_runs.pop(name, None)
        self.config = new
        for name in new.checks:
            if name not in self.scheduler.checks:
                await self._schedule(name, new)
        kept = {n: s for n, s in self.dispatcher.sinks.items() if new.sinks.get(n) == old.sinks.get(n)}
        self.dispatcher.replace_sinks(self._build_sinks(new, keep=kept))
        self.notifier.config = new
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

    async def _schedule(self, name: str, config: Config) -> None:
        check_config = config.checks[name]
        check = registry.create_check(name, check_config, CheckContext(self.http, self.clock, self.metrics))
        try:
            await check.start()
        except Exception as exc:  # noqa: BLE001 - a check that cannot start still runs and reports why
            log.warning("check.start_failed", check=name, error=f"{type(exc).__name__}: {exc}")
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
                self._publish(self.incidents.tick())
                self.notifier.flush()
                self._refresh_due_sinks()
            except Exception:
                log.exception("incidents.tick_failed")
            await self.clock.sleep_until(self.clock.monotonic() + TICK_SECONDS)

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
            self.notifier.publish(events)
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
        return f"{len(config.checks)} checks, {len(config.sinks)} sinks, listening on {config.server.listen}"

    async def _shutdown(self, runner: web.AppRunner) -> None:
        systemd.stopping(status="stopping")
        for task in (self._watchdog, self._ticker, *self._refreshing.values()):
            if task is not None:
                task.cancel()
        self.ready = False
        log.info("daemon.stopping")
        for check in await self.scheduler.stop():
            await check.aclose()
        self.incidents.flush()
        await self.dispatcher.drain(self.config.monitor.shutdown_grace)
        for sink in self.dispatcher.sinks.values():
            await sink.aclose()
        await runner.cleanup()
        await self.http.close()
        self.store.close()
        log.info("daemon.stopped")
