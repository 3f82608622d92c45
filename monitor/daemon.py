"""The daemon: wires config, scheduler, incidents, dispatcher and server, and owns their lifetimes.

What only the leader does (checks and heartbeat judging, the incident core's tick: escalation,
status updates, acknowledgements, silences; delivery; retention; the history flush) is one
term's work (`_lead`), started when the cluster promotes this process and stopped, all of it,
when the term ends. A SQLite setup is one process promoted at once (`SingleProcess`); with the
state on PostgreSQL the elector promotes and demotes it (`Replicated`). A standby keeps the
config, serves /metrics, /healthz, /readyz, the read API and the status page from the shared
store, takes pings, and writes acknowledgements to the store for the leader to apply."""

import asyncio
import signal
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from pydantic import BaseModel, SecretStr

from alerting.base import Sink, SinkContext
from alerting.messages import use_templates_dir
from checks.base import Check, CheckContext
from monitor import __version__, gc_policy, registry, systemd
from monitor.clock import Clock, SystemClock
from monitor.cluster.api import add_cluster_routes
from monitor.cluster.metrics import ClusterMetrics
from monitor.cluster.model import Term
from monitor.cluster.replicated import Replicated
from monitor.cluster.single import SingleProcess, SqliteMembership
from monitor.cluster.supervisor import RoleSupervisor
from monitor.config import Config, ConfigError, MaintenanceWindow, load_config
from monitor.context.api import add_context_routes
from monitor.context.service import ContextService
from monitor.history.api import add_history_routes
from monitor.history.service import History
from monitor.history.stores import open_history_store
from monitor.incident_desk import DaemonDesk
from monitor.metrics import MonitorMetrics
from monitor.model import Incident, Severity, Status
from monitor.ping_api import add_ping_routes
from monitor.pings import PingLedger
from monitor.pipeline import Pipeline
from monitor.runner import RunResult
from monitor.scheduler import MAX_START_SPREAD_SECONDS, Scheduler
from monitor.scrub import register_secret
from monitor.secrets import EnvSecret
from monitor.server import HEALTHY_HEARTBEAT_AGE_SECONDS, build_app
from monitor.side_stores import SideStores, open_side_stores
from monitor.status_page import LastRun
from monitor.status_routes import add_status_routes
from monitor.store import Silence, StaleEpoch, StoreUnavailable, prune_expired
from monitor.store_factory import open_state_store
from monitor.store_guard import GuardedStore
from monitor.wording import counted

log = structlog.get_logger("monitor.daemon")

TICK_SECONDS = 1.0
MAINTENANCE_SECONDS = 60.0
"""How often finished outbox rows and resolved incidents past `[monitor] retention` are pruned."""
OUTBOX_AGE_SECONDS = 5.0
"""How often the leader reads the age of the oldest pending delivery."""
HANDOVER_GRACE = 1.0
"""A replica stopping cleanly gives its queued notifications this long (at most `shutdown_grace`)
before it resigns; what is left stays pending in the outbox for the next leader."""


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
        self._has_started = False
        self._stop = asyncio.Event()
        self._reloading: asyncio.Task[None] | None = None
        self._reload_again = False
        self._maintainer: asyncio.Task[None] | None = None
        self._history_flusher: asyncio.Task[None] | None = None
        self._role_change = asyncio.Lock()
        """Held while a term starts and while a reload applies, so that neither sees half of the other."""
        self._watchdog: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._outbox_watcher: asyncio.Task[None] | None = None
        self._refreshing: dict[str, asyncio.Task[None]] = {}
        self._refreshed_at: dict[str, float] = {}
        self._term: Term | None = None
        """The term this process leads, while it does."""
        self._term_pipeline: Pipeline | None = None
        """The pipeline the current term opened (closed when the term ends)."""
        self._leading = asyncio.Event()
        """Set once the current term's work is running (its pipeline open, its checks started)."""
        self._graceful = False
        self.replicated = config.monitor.state_dsn_value is not None
        self.last_runs: dict[str, LastRun] = {}
        """Each check's latest result, for the status page."""
        register_secrets(config)

    # The server reads these.
    store: GuardedStore
    side: SideStores
    heartbeats: PingLedger
    scheduler: Scheduler

    @property
    def leading(self) -> bool:
        return self._leading.is_set()

    @property
    def sinks(self) -> dict[str, Sink]:
        return dict(self._sinks)

    def heartbeat_age(self) -> float:
        """How late the scheduler's heartbeat is; 0 on a standby, which runs no checks."""
        if not self.leading:
            return 0.0
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
        """Start, serve until asked to stop, stop. Each part is closed by the exit stack in
        the reverse order of its opening, so a start-up that fails half-way closes what it
        had opened and nothing else."""
        if handle_signals:
            self._install_signal_handlers()
        gc_policy.apply()
        use_templates_dir(self.config.settings.alerting.templates_dir)
        async with AsyncExitStack() as stack:
            stack.callback(self._stopped)
            path = self.config.monitor.state_path
            state_store = await open_state_store(self.config.monitor)
            self.store = GuardedStore(state_store, self.metrics, self.clock)
            stack.push_async_callback(self.store.close)
            self.side = await open_side_stores(self.config.monitor, state_store)
            stack.push_async_callback(self.side.close)
            self.http = http_session(self.config.monitor.concurrency)
            stack.push_async_callback(self.http.close)
            self.heartbeats = self.side.pings
            history_store = open_history_store(self.store, path)
            self.history = History(history_store, self.clock, self._holds, self.metrics.checks.set_uptime)
            stack.push_async_callback(self.history.store.close)
            stack.push_async_callback(self._flush_history)
            self._sinks = self._build_sinks(self.config)
            stack.push_async_callback(self._close_sinks)
            self.scheduler = Scheduler(self.clock, self.metrics, self.config.monitor.concurrency, self._on_result)
            self.context = ContextService(self.config, None, self.http, self.clock, self.side.journal)
            stack.push_async_callback(self.context.close)
            self._supervisor = RoleSupervisor({"leader": self._lead}, self.clock)
            stack.push_async_callback(self._supervisor.aclose)
            self.cluster_metrics = ClusterMetrics(self.metrics.shared)
            self.cluster = self._cluster()
            app = build_app(self)
            add_context_routes(app, self)
            add_cluster_routes(app, self.cluster)
            registry.add_sink_routes(app, DaemonDesk(self))
            add_ping_routes(app, self)
            add_history_routes(app, self)
            add_status_routes(app, self)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            await web.TCPSite(runner, self.config.server.host, self.config.server.port).start()
            stack.push_async_callback(self.cluster.aclose)  # the leader's work stops (and a replica resigns) first
            await self.cluster.start()
            if not self.replicated:
                await self._wait_until_leading()
            gc_policy.freeze_now_and_after(self._first_runs_seconds())
            self._started()
            stack.callback(self._stopping)
            self._start_watchdog()
            stack.push_async_callback(self._cancel_tasks)
            await self._stop.wait()

    def _cluster(self) -> SingleProcess | Replicated:
        monitor = self.config.monitor
        dsn = monitor.state_dsn_value
        if dsn is None:
            membership = self.side.membership
            assert isinstance(membership, SqliteMembership)  # open_side_stores: SQLite with the state
            return SingleProcess(monitor.node_name, membership, self.clock, self.cluster_metrics, self)
        return Replicated(
            dsn, monitor.node_name, monitor.leader_lease, self, self.side.membership, self.clock, self.cluster_metrics
        )

    async def _wait_until_leading(self) -> None:
        """A single process starts reporting once its checks run (or it is asked to stop)."""
        leading = asyncio.ensure_future(self._leading.wait())
        stopping = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({leading, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            leading.cancel()
            stopping.cancel()

    # Roles (the cluster's RoleListener)

    async def promoted(self, term: Term) -> None:
        self._term = term
        self._graceful = False
        await self._supervisor.promoted(term)

    async def demoted(self, term: Term, reason: str) -> None:
        self._graceful = reason == "stopping"
        await self._supervisor.demoted(term, reason)
        if self._term is term:
            self._term = None

    def _epoch(self) -> int | None:
        """Stamped on every leader-only write: the term's epoch; 0 (never current: an election
        makes it at least 1) when no term runs, so that a late write changes nothing."""
        if not self.replicated:
            return None
        return self._term.epoch if self._term is not None else 0

    def _on_stale(self, _exc: StaleEpoch) -> None:
        if self._term is not None:
            self._term.stale()

    async def _lead(self, term: Term) -> None:
        """One term's leader work, from what the store holds; until the term ends (cancelled)."""
        try:
            await self._take_lead()
            self._leading.set()
            log.info("daemon.leading", node=term.node, epoch=term.epoch, checks=len(self.config.checks),
                     open_incidents=len(self.incidents.open_incidents))
            await asyncio.Event().wait()
        finally:
            self._leading.clear()
            await self._give_up_lead()

    async def _take_lead(self) -> None:
        async with self._role_change:
            await self._start_term(self.config)

    async def _start_term(self, config: Config) -> None:
        self.store.on_stale = self._on_stale
        if self.replicated:
            await self.store.retry()  # a problem from before this term is not this term's
        pipeline = await Pipeline.open(
            config, self.store, self._sinks, self.metrics, self.clock, self.http, self._epoch
        )
        self.pipeline = self._term_pipeline = pipeline
        if self.replicated and self.store.problem is not None:
            # A read that failed answered empty: leading on it would page open incidents again.
            raise StoreUnavailable(f"the state to lead from could not be read: {self.store.problem}")
        self.incidents = self.pipeline.incidents
        self.dispatcher, self.notifier = self.pipeline.dispatcher, self.pipeline.notifier
        self.pipeline.route = self.context.route
        self.context.lead(self.pipeline)
        await self.pipeline.announce_unannounced()
        self.scheduler.start()
        for name in config.checks:
            await self._start_check(self._create_check(name, config), config)
        self._ticker = asyncio.create_task(self._tick_forever(), name="incidents:tick")
        self._maintainer = asyncio.create_task(self._maintain_forever(), name="store:maintenance")
        if self.replicated:
            self._outbox_watcher = asyncio.create_task(self._watch_outbox_forever(), name="outbox:age")
        await self.history.flush(config.checks)  # the uptimes kept from before, at once
        self._history_flusher = asyncio.create_task(
            self.history.flush_forever(lambda: self.config.checks), name="history:flush"
        )

    async def _give_up_lead(self) -> None:
        """Stop all of the term's work: nothing of it runs once this returns."""
        self.context.lead(None)
        await self._cancel_leader_tasks()
        self._refreshed_at.clear()  # a next term refreshes the sinks that forget (Alertmanager) at once
        await self._stop_checks()
        pipeline, self._term_pipeline = self._term_pipeline, None
        if pipeline is not None:
            grace = self.config.monitor.shutdown_grace
            if self.replicated:
                grace = min(grace, HANDOVER_GRACE) if self._graceful else 0.0
            try:
                await pipeline.close(grace, close_sinks=False)
            except StaleEpoch:
                log.warning("daemon.final_writes_rejected", reason="another replica leads")
        if self.replicated:
            self.store.forget_waiting()
            self._forget_leader_series()

    def _forget_leader_series(self) -> None:
        """A standby exports its own series: not the checks' and incidents' of a term that ended
        (Prometheus would hear two replicas report the same check)."""
        for name in self.config.checks:
            self.metrics.forget_check(name)
        for severity in Severity:
            self.metrics.incidents_open.labels(severity=severity.value).set(0)
        self.cluster_metrics.outbox_oldest_pending.set(0)

    def _started(self) -> None:
        self.ready = self._has_started = True
        log.info(
            "daemon.started",
            version=__version__,
            listen=self.config.server.listen,
            checks=len(self.config.checks),
            sinks=len(self.config.sinks),
            role="leader" if self.leading else "standby",
        )
        systemd.ready(status=self._systemd_status())

    def _stopping(self) -> None:
        systemd.stopping(status="stopping")
        self.ready = False
        log.info("daemon.stopping")

    def _stopped(self) -> None:
        if self._has_started:  # a failed start is reported once, by the caller
            log.info("daemon.stopped")

    async def reload(self) -> None:
        """SIGHUP: systemd hears RELOADING=1 first and READY=1 once done, even when the new config is rejected."""
        systemd.reloading(status="reloading the configuration")
        try:
            async with self._role_change:  # a term starting now starts with the config as reloaded
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
            kept = {n: s for n, s in self._sinks.items() if new.sinks.get(n) == old.sinks.get(n)}
            sinks = self._build_sinks(new, keep=kept)
        except Exception as exc:  # noqa: BLE001 - a plugin may raise anything; the old config stays
            for check in built:
                await check.aclose()
            problem = f"{type(exc).__name__}: {exc}"
            log.error("config.reload_rejected", problems=[problem], keeping="the running configuration")
            return
        use_templates_dir(new.settings.alerting.templates_dir)
        leading = self.leading
        for name in changed:
            if name in self.scheduler.checks:
                await (await self.scheduler.remove(name)).aclose()
            if name not in new.checks:
                self.metrics.forget_check(name)
                self.last_runs.pop(name, None)
        self.config = new
        for check in built:
            if leading:
                await self._start_check(check, new)
            else:
                await check.aclose()  # built to prove the config; the next term creates its own
        self._sinks = sinks
        self.context.update_config(new)
        if leading:
            self.dispatcher.replace_sinks(sinks)
            await self.pipeline.update_config(new)
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
        context = SinkContext(self.http, self.clock, self.side.threads)
        return {
            name: keep.get(name) or registry.create_sink(name, sink_config, context)
            for name, sink_config in config.sinks.items()
        }

    async def acknowledge(self, incident_id: int, by: str, note: str) -> Incident | None:
        """The leader applies it now; a standby writes it to the store for the leader to apply
        at its next tick (the incident as it stands; None when it is not open)."""
        if self.leading:
            return await self.pipeline.acknowledge(incident_id, by, note)
        incident = await self.store.get_incident(incident_id)
        if incident is None or not incident.is_open:
            return None
        await self.store.request_acknowledgement(incident_id, self.clock.now(), by, note)
        return incident

    async def annotate(self, incident_id: int, kind: str, text: str) -> Incident | None:
        """A timeline entry; on a standby none (the leader's timeline is the leader's to write)."""
        if not self.leading:
            return None
        return await self.pipeline.annotate(incident_id, kind, text)

    @property
    def api_token(self) -> str | None:
        token = self.config.server.api_token_env
        return token.value() if token else None

    async def _on_result(self, result: RunResult) -> None:
        finished = self.clock.now()
        self.last_runs[result.check] = LastRun(result, finished)
        if await self.pipeline.on_result(result, finished):
            self.history.record(result.check, finished, result.status <= Status.WARNING, result.duration)

    async def _tick_forever(self) -> None:
        while True:
            try:
                await self.context.apply_recorded_actions()
                await self.pipeline.tick()
                self._refresh_due_sinks()
            except Exception:
                log.exception("incidents.tick_failed")
            await self.clock.sleep_until(self.clock.monotonic() + TICK_SECONDS)

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

    async def _watch_outbox_forever(self) -> None:
        gauge = self.cluster_metrics.outbox_oldest_pending
        while True:
            oldest = await self.store.oldest_pending()
            gauge.set(max((self.clock.now() - oldest).total_seconds(), 0.0) if oldest is not None else 0.0)
            await self.clock.sleep_until(self.clock.monotonic() + OUTBOX_AGE_SECONDS)

    async def _cancel_leader_tasks(self) -> None:
        """Cancel the term's own tasks and wait until each has ended."""
        tasks = [self._ticker, self._maintainer, self._history_flusher, self._outbox_watcher,
                 *self._refreshing.values()]
        await _cancel(tasks)

    async def _cancel_tasks(self) -> None:
        """Cancel the daemon's own tasks and wait until each has ended."""
        await _cancel([self._watchdog])

    async def _close_sinks(self) -> None:
        for sink in self._sinks.values():
            await sink.aclose()

    def _holds(self) -> tuple[list[Silence], list[MaintenanceWindow]]:
        """What history sets apart from uptime, read once per flush (the silences as of the last tick)."""
        silences = self.pipeline.incidents.silences if self.leading else []
        return silences, self.config.settings.maintenance

    async def _flush_history(self) -> None:
        """The runs since the last flush, written before the state file closes."""
        await self.history.flush(self.config.checks)

    async def _stop_checks(self) -> None:
        for check in await self.scheduler.stop():
            await check.aclose()



async def _cancel(tasks: list[asyncio.Task[None] | None]) -> None:
    running = [task for task in tasks if task is not None and not task.done()]
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)
