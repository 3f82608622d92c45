"""The daemon: wires config, scheduler, incidents, dispatcher and server, and owns their lifetimes."""

import asyncio
import signal
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from pydantic import BaseModel

from alerting.base import Notification, NotificationKind, Sink, SinkContext
from alerting.dispatcher import Dispatcher
from checks.base import CheckContext
from monitor import __version__, registry
from monitor.clock import Clock, SystemClock
from monitor.config import Config, ConfigError, load_config
from monitor.incident_log import IncidentLog
from monitor.incidents import IncidentEvent, IncidentEventKind, IncidentManager
from monitor.logs import secret_masker
from monitor.metrics import MonitorMetrics
from monitor.model import Severity
from monitor.runner import RunResult
from monitor.scheduler import Scheduler
from monitor.secrets import EnvSecret
from monitor.server import build_app
from monitor.store import SqliteStore, StateStore

log = structlog.get_logger("monitor.daemon")

_NOTIFICATION_KIND = {
    IncidentEventKind.OPENED: NotificationKind.INITIAL,
    IncidentEventKind.SEVERITY_RAISED: NotificationKind.SEVERITY_RAISED,
    IncidentEventKind.RESOLVED: NotificationKind.RESOLUTION,
}


def config_secrets(config: Config) -> list[str]:
    """Every secret value the config read from the environment, for the log masker."""
    found: list[str] = []

    def collect(value: Any) -> None:
        if isinstance(value, EnvSecret):
            found.append(value.value())
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
        self.metrics = MonitorMetrics()
        self.ready = False
        self._stop = asyncio.Event()
        self._reloading: asyncio.Task[None] | None = None
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
        self.store = SqliteStore(self.config.monitor.state_path)
        self.http = http_session(self.config.monitor.concurrency)
        self.incidents = IncidentManager(
            self.store, IncidentLog(self.config.monitor.incident_log), self.clock, dict(self.config.checks)
        )
        self._refresh_incident_gauges()
        self.dispatcher = Dispatcher(self._build_sinks(self.config), self.store, self.metrics, self.clock)
        self.dispatcher.resume()
        self.scheduler = Scheduler(self.clock, self.metrics, self.config.monitor.concurrency, self._on_result)
        runner = web.AppRunner(build_app(self), access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.config.server.host, self.config.server.port)
            await site.start()
            self.scheduler.start()
            for name in self.config.checks:
                await self._schedule(name, self.config)
            self.ready = True
            log.info(
                "daemon.started",
                version=__version__,
                listen=self.config.server.listen,
                checks=len(self.config.checks),
                sinks=len(self.config.sinks),
                open_incidents=len(self.incidents.open_incidents),
            )
            await self._stop.wait()
        finally:
            await self._shutdown(runner)

    async def reload(self) -> None:
        try:
            new = load_config(self.config.path, self.overrides)
        except ConfigError as exc:
            log.error("config.reload_rejected", problems=exc.problems, keeping="the running configuration")
            return
        old = self.config
        secret_masker.remember(config_secrets(new))
        for name in old.checks:
            if new.checks.get(name) != old.checks[name]:
                await (await self.scheduler.remove(name)).aclose()
                if name not in new.checks:
                    self.metrics.forget_check(name)
        self.config = new
        for name in new.checks:
            if name not in self.scheduler.checks:
                await self._schedule(name, new)
        self._notify(self.incidents.update_checks(dict(new.checks)))
        kept = {n: s for n, s in self.dispatcher.sinks.items() if new.sinks.get(n) == old.sinks.get(n)}
        self.dispatcher.replace_sinks(self._build_sinks(new, keep=kept))
        if new.server.listen != old.server.listen:
            log.warning("config.reload_needs_restart", key="server.listen", running=old.server.listen)
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

    def _on_result(self, result: RunResult) -> None:
        self.metrics.record_run(result.check, result.status, result.duration, self.clock.now().timestamp())
        events = self.incidents.observe(result.check, result.findings)
        if events:
            self._notify(events)

    def _notify(self, events: list[IncidentEvent]) -> None:
        for event in events:
            if event.kind is IncidentEventKind.OPENED:
                self.metrics.incidents_opened.labels(severity=event.incident.severity.value).inc()
            self.dispatcher.submit(self._notification(event))
        self._refresh_incident_gauges()

    def _notification(self, event: IncidentEvent) -> Notification:
        incident = event.incident
        kind = _NOTIFICATION_KIND[event.kind]
        suffix = f":{incident.severity.value}" if kind is NotificationKind.SEVERITY_RAISED else ""
        return Notification(
            id=f"{incident.id}:{kind.value}{suffix}",
            kind=kind,
            incident=incident,
            monitor=self.config.monitor.name,
            created_at=self.clock.now(),
            previous_severity=event.previous_severity,
            next_update_seconds=self.config.severity_policy(incident.severity).update_every,
        )

    def _refresh_incident_gauges(self) -> None:
        counts = dict.fromkeys(Severity, 0)
        for incident in self.incidents.open_incidents:
            counts[incident.severity] += 1
        for severity, count in counts.items():
            self.metrics.incidents_open.labels(severity=severity.value).set(count)

    async def _shutdown(self, runner: web.AppRunner) -> None:
        self.ready = False
        log.info("daemon.stopping")
        for check in await self.scheduler.stop():
            await check.aclose()
        await self.dispatcher.drain(self.config.monitor.shutdown_grace)
        for sink in self.dispatcher.sinks.values():
            await sink.aclose()
        await runner.cleanup()
        await self.http.close()
        self.store.close()
        log.info("daemon.stopped")
