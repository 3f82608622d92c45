"""What each `health-monitor` command does (the parser is in `monitor.cli`). User mistakes
and failures to start are `CommandError`s: one line on stderr, never a traceback."""

import argparse
import asyncio
import errno
import json
import sqlite3
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from rich.console import Console
from rich.table import Table

from alerting.base import SinkContext
from checks.base import CheckContext
from checks.heartbeat.config import HeartbeatConfig
from monitor import event_loop, logs, registry
from monitor.clock import SystemClock
from monitor.config import Config, load_config
from monitor.daemon import Daemon, http_session
from monitor.durations import format_duration, parse_duration
from monitor.incident_core import classify
from monitor.metrics import MonitorMetrics
from monitor.model import Finding, Incident, Status
from monitor.pipeline import Pipeline
from monitor.postmortem import render_postmortem
from monitor.runner import RunResult, run_check
from monitor.schema import config_json_schema
from monitor.side_stores import open_side_stores, side_stores_of
from monitor.store import Delivery, Silence, StateStore, StoreError, StoreUnavailable
from monitor.store_factory import open_state_store
from monitor.store_guard import GuardedStore
from monitor.wording import counted

log = structlog.get_logger("monitor.cli")


class CommandError(Exception):
    """A command that cannot do its job; printed as one line."""


def report(args: argparse.Namespace, lines: list[str], event: str) -> None:
    """Errors on stderr: `error: ...` lines, or for `run` off a terminal one JSON log line,
    so the journal and `run 2>&1 | jq` see nothing else."""
    if args.handler == "run" and not sys.stderr.isatty():
        if event == "config.invalid":
            log.error(event, problems=lines)
        else:
            log.error(event, error=lines[0])
        return
    for line in lines:
        print(f"error: {line}", file=sys.stderr)


# run


def run(args: argparse.Namespace) -> int:
    logs.configure(args.log_level)
    overrides = {"monitor": {"interval": args.interval}} if args.interval else None
    config = load_config(args.config, overrides)
    try:
        event_loop.run(Daemon(config, overrides=overrides).run(), args.loop)
    except event_loop.LoopUnavailableError as exc:
        raise CommandError(str(exc)) from None
    except StoreError as exc:
        raise CommandError(str(exc)) from None
    except sqlite3.Error as exc:
        raise CommandError(f"state store {config.monitor.state_path}: {exc}") from None
    except OSError as exc:
        raise CommandError(_start_failure(config, exc)) from None
    return 0


def _start_failure(config: Config, exc: OSError) -> str:
    if exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES) and exc.filename is None:
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        return f"cannot listen on {config.server.listen} ([server] listen): {reason}"
    where = f"{exc.filename}: " if exc.filename else ""
    return f"cannot start: {where}{exc.strerror or exc}"


# once


def once(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    logs.configure("warning")
    unknown = sorted(set(args.check) - set(config.checks))
    if unknown:
        raise CommandError(f"no check named {', '.join(unknown)} in {config.path} (known: {', '.join(config.checks)})")
    names = args.check or list(config.checks)
    try:
        results = asyncio.run(_run_once(config, names))
    except (StoreError, StoreUnavailable) as exc:  # the heartbeat checks' pings cannot be read
        raise CommandError(str(exc)) from None
    if args.notify:
        try:
            asyncio.run(_notify_once(config, results))
        except StoreError as exc:
            raise CommandError(str(exc)) from None
    worst = max((result.status for result in results), default=Status.OK)
    if args.format == "json":
        print(json.dumps(_once_json(config, results, worst), indent=2))
    else:
        _print_results_table(config, results)
    return int(worst)


async def _run_once(config: Config, names: list[str]) -> list[RunResult]:
    clock = SystemClock()
    slots = asyncio.Semaphore(config.monitor.concurrency)
    # Heartbeat checks judge the pings the daemon kept in the state store.
    wants_pings = any(isinstance(config.checks[name], HeartbeatConfig) for name in names)
    async with AsyncExitStack() as stack:
        ledger = (await stack.enter_async_context(side_stores_of(config.monitor))).pings if wants_pings else None
        http = await stack.enter_async_context(http_session(config.monitor.concurrency))
        context = CheckContext(http, clock, MonitorMetrics(), ledger)

        async def run_one(name: str) -> RunResult:
            check = registry.create_check(name, config.checks[name], context)
            timeout = config.checks[name].timeout or config.monitor.timeout
            async with slots:
                try:
                    await check.start()
                    return await run_check(check, timeout)
                finally:
                    await check.aclose()

        return list(await asyncio.gather(*(run_one(name) for name in names)))


async def _notify_once(config: Config, results: list[RunResult]) -> None:
    """One pass of the daemon's incident flow over these results, with thresholds of one run,
    then up to `shutdown_grace` for the notifications; what is left waits in the outbox."""
    one_shot = replace(
        config,
        checks={
            name: check.model_copy(update={"failure_threshold": 1, "success_threshold": 1})
            for name, check in config.checks.items()
        },
    )
    clock = SystemClock()
    metrics = MonitorMetrics()
    state_store = await open_state_store(config.monitor)
    store = GuardedStore(state_store, metrics, clock)
    try:
        async with AsyncExitStack() as stack:
            side = await open_side_stores(config.monitor, state_store)
            stack.push_async_callback(side.close)
            http = await stack.enter_async_context(http_session(config.monitor.concurrency))
            context = SinkContext(http, clock, side.threads)
            sinks = {name: registry.create_sink(name, sink, context) for name, sink in config.sinks.items()}
            pipeline = await Pipeline.open(one_shot, store, sinks, metrics, clock, http)
            await pipeline.announce_unannounced()
            for result in results:
                await pipeline.on_result(result)
            await pipeline.tick(flush_now=True)
            await pipeline.close(config.monitor.shutdown_grace)
    finally:
        await store.close()


def _once_json(config: Config, results: list[RunResult], worst: Status) -> dict[str, Any]:
    return {
        "monitor": config.monitor.name,
        "status": worst.label,
        "checks": [
            {
                "check": result.check,
                "type": config.checks[result.check].type,
                "status": result.status.label,
                "duration_seconds": round(result.duration, 6),
                "findings": [
                    {
                        "code": finding.code,
                        "status": finding.status.label,
                        "severity": _severity(config, result.check, finding),
                        "summary": finding.summary,
                        "evidence": list(finding.evidence),
                    }
                    for finding in result.findings
                ],
            }
            for result in results
        ],
    }


def _severity(config: Config, check: str, finding: Finding) -> str | None:
    return classify(config.checks[check], finding).value if finding.failing else None


def _print_results_table(config: Config, results: list[RunResult]) -> None:
    table = Table("check", "status", "severity", "code", "summary", "time", title=f"{config.monitor.name}")
    for result in results:
        for finding in result.findings:
            table.add_row(
                result.check,
                finding.status.label.upper(),
                _severity(config, result.check, finding) or "",
                finding.code,
                finding.summary,
                format_duration(result.duration),
            )
    _console().print(table)


# check-config


def check_config(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    print(
        f"{config.path}: valid. monitor {config.monitor.name!r}, {counted(len(config.checks), 'check')}, "
        f"{counted(len(config.sinks), 'sink')}, listening on {config.server.listen}, "
        f"state in {config.monitor.state_path}"
    )
    checks = _check_rows(config)
    sinks = [
        (name, sink.type, sink.min_severity.value, "yes" if sink.send_resolved else "no")
        for name, sink in config.sinks.items()
    ]
    if sys.stdout.isatty():
        console = _console()
        console.print(_table("checks", ("check", "type", "interval", "timeout", "thresholds (fail/ok)"), checks))
        console.print(_table("sinks", ("sink", "type", "min severity", "resolved"), sinks))
        return 0
    # Plain lines for the journal (ExecStartPre) and for scripts.
    for name, kind, interval, timeout, thresholds in checks:
        print(f"check {name}: {kind}, every {interval}, timeout {timeout}, thresholds (fail/ok) {thresholds}")
    for name, kind, severity, resolved in sinks:
        print(f"sink {name}: {kind}, min severity {severity}, resolved {resolved}")
    return 0


CHECK_ROWS_SHOWN = 50


def _check_rows(config: Config) -> list[tuple[str, ...]]:
    """One row per check; past CHECK_ROWS_SHOWN checks, one row per distinct setting with a count,
    so that a config of 10,000 checks is summarised in a screen (and in milliseconds)."""
    rows: dict[tuple[str, ...], list[str]] = {}
    for name, check in config.checks.items():
        setting = (
            check.type,
            format_duration(check.interval or config.monitor.interval),
            format_duration(check.timeout or config.monitor.timeout),
            f"{check.failure_threshold}/{check.success_threshold}",
        )
        rows.setdefault(setting, []).append(name)
    if len(config.checks) <= CHECK_ROWS_SHOWN:
        return [(name, *setting) for setting, names in rows.items() for name in names]
    return [(f"{len(names)} checks ({names[0]}, ...)", *setting) for setting, names in rows.items()]


def _table(title: str, columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> Table:
    table = Table(*columns, title=title)
    for row in rows:
        table.add_row(*row)
    return table


# Operator commands: they read the daemon's store and need none of its secrets.


def _operator_config(args: argparse.Namespace) -> Config:
    return load_config(args.config, resolve_secrets=False)


@asynccontextmanager
async def _existing_store(config: Config) -> AsyncIterator[StateStore]:
    """The daemon's store, opened for one command; never created when it is not there."""
    path = Path(config.monitor.state_path)
    if config.monitor.state_dsn_value is None and not await asyncio.to_thread(path.is_file):
        raise CommandError(f"no state store at {path}: is the daemon running with this config?")
    try:
        store = await open_state_store(config.monitor)
    except StoreError as exc:
        raise CommandError(str(exc)) from None
    try:
        yield store
    except StoreUnavailable as exc:
        raise CommandError(f"state store {store.display}: {exc}") from None
    finally:
        await store.close()


def incidents(args: argparse.Namespace) -> int:
    found = asyncio.run(_read_incidents(_operator_config(args), args.all))
    if args.format == "json":
        print(json.dumps([incident.model_dump(mode="json") for incident in found], indent=2))
        return 0
    _print_incidents_table(found, "all recent incidents" if args.all else "open incidents")
    return 0


async def _read_incidents(config: Config, everything: bool) -> list[Incident]:
    async with _existing_store(config) as store:
        return await (store.recent_incidents() if everything else store.open_incidents())


def _print_incidents_table(found: list[Incident], title: str) -> None:
    table = Table("id", "severity", "state", "incident", "opened", "summary", title=title)
    for incident in found:
        table.add_row(
            str(incident.id),
            incident.severity.value,
            incident.state,
            incident.key,
            f"{incident.opened_at:%Y-%m-%d %H:%M:%SZ}",
            incident.summary,
        )
    _console().print(table)


def ack(args: argparse.Namespace) -> int:
    print(asyncio.run(_ack(_operator_config(args), args)))
    return 0


async def _ack(config: Config, args: argparse.Namespace) -> str:
    async with _existing_store(config) as store:
        incident = await store.get_incident(args.id)
        if incident is None:
            raise CommandError(f"no incident {args.id}")
        if not incident.is_open:
            return f"incident #{incident.id} ({incident.key}) is already resolved"
        earlier = await _earlier_acknowledgement(store, incident)
        if earlier is not None:
            return f"incident #{incident.id} ({incident.key}) is already acknowledged by {earlier}"
        await store.request_acknowledgement(incident.id, datetime.now(UTC), args.by, args.note)
    return f"acknowledged #{incident.id} ({incident.key}) as {args.by}; the running daemon stops its escalation"


async def _earlier_acknowledgement(store: StateStore, incident: Incident) -> str | None:
    """Who acknowledged it and when, also when the daemon has not applied that request yet."""
    if incident.acknowledged_at is not None:
        return f"{incident.acknowledged_by or 'someone'} at {incident.acknowledged_at:%Y-%m-%d %H:%M:%S}Z"
    requests = await store.unapplied_acknowledgements()
    pending = [request for request in requests if request.incident_id == incident.id]
    if pending:
        return f"{pending[0].by} at {pending[0].at:%Y-%m-%d %H:%M:%S}Z"
    return None


def ping(args: argparse.Namespace) -> int:
    """The token is read from the check's own variable: other checks' secrets need not be set."""
    from monitor.ping_command import PingError, send_ping

    config = load_config(args.config, resolve_secrets=False)
    try:
        print(send_ping(config, args))
    except PingError as exc:
        raise CommandError(str(exc)) from None
    return 0


async def _find_incident(config: Config, incident_id: int) -> tuple[Incident, list[Delivery]]:
    async with _existing_store(config) as store:
        incident = await store.get_incident(incident_id)
        if incident is None:
            raise CommandError(f"no incident {incident_id}")
        return incident, await store.deliveries_for(incident_id)


def action(args: argparse.Namespace) -> int:
    """Needs the secrets (the Railway token); Railway is called from monitor/context/command.py."""
    from monitor.context.command import run_action

    config = load_config(args.config)
    incident, _ = asyncio.run(_find_incident(config, args.id))
    return run_action(config, incident, args)


def cluster(args: argparse.Namespace) -> int:
    from monitor.cluster.command import print_cluster, read_cluster

    config = _operator_config(args)
    path = Path(config.monitor.state_path)
    if not path.is_file():
        raise CommandError(f"no state store at {path}: is the daemon running with this config?")
    now = datetime.now(UTC)
    try:
        view = asyncio.run(read_cluster(config, now))
    except (StoreError, StoreUnavailable) as exc:
        raise CommandError(f"cannot read the state store {path}: {exc}") from None
    return print_cluster(view, args.format, now)


def postmortem(args: argparse.Namespace) -> int:
    config = _operator_config(args)
    incident, deliveries = asyncio.run(_find_incident(config, args.id))
    draft = render_postmortem(incident, deliveries, config.monitor.name, datetime.now(UTC)).rstrip("\n") + "\n"
    if args.output:
        Path(args.output).write_text(draft, encoding="utf-8")
        print(f"post-mortem draft of #{incident.id} written to {args.output}")
    else:
        sys.stdout.write(draft)
    return 0


def silence_add(args: argparse.Namespace) -> int:
    config = _operator_config(args)
    if args.check != "*" and args.check not in config.checks:
        raise CommandError(f"no check named {args.check} in {config.path} (known: {', '.join(config.checks)})")
    try:
        seconds = parse_duration(args.duration)
    except ValueError as exc:
        raise CommandError(f"--for: {exc}") from None
    now = datetime.now(UTC)

    async def add() -> Silence:
        async with _existing_store(config) as store:
            return await store.add_silence(args.check, now, now + timedelta(seconds=seconds), args.reason)

    silence = asyncio.run(add())
    print(f"silence #{silence.id}: {silence.check} until {silence.ends_at:%Y-%m-%d %H:%M:%S}Z ({args.reason})")
    return 0


def silence_list(args: argparse.Namespace) -> int:
    async def active() -> list[Silence]:
        async with _existing_store(_operator_config(args)) as store:
            return await store.silences(datetime.now(UTC))

    table = Table("id", "check", "from", "until", "reason", title="silences")
    for silence in asyncio.run(active()):
        table.add_row(
            str(silence.id), silence.check, f"{silence.starts_at:%Y-%m-%d %H:%M}Z",
            f"{silence.ends_at:%Y-%m-%d %H:%M}Z", silence.reason,
        )
    _console().print(table)
    return 0


def silence_remove(args: argparse.Namespace) -> int:
    async def remove() -> bool:
        async with _existing_store(_operator_config(args)) as store:
            return await store.remove_silence(args.id)

    if not asyncio.run(remove()):
        raise CommandError(f"no active silence {args.id}")
    print(f"silence #{args.id} removed; notifications resume for what is still failing")
    return 0


def migrate(args: argparse.Namespace) -> int:
    print(asyncio.run(_migrate(_operator_config(args))))
    return 0


async def _migrate(config: Config) -> str:
    on_file = config.monitor.state_dsn_value is None
    existed = await asyncio.to_thread(Path(config.monitor.state_path).is_file) if on_file else True
    try:
        store = await open_state_store(config.monitor)
    except StoreError as exc:
        raise CommandError(str(exc)) from None
    try:
        version = await store.schema_version()
        migrated = store.migrated
    except StoreUnavailable as exc:
        raise CommandError(f"state store {store.display}: {exc}") from None
    finally:
        await store.close()
    if not existed or (not on_file and migrated and migrated[0].version == 1):
        return f"created the state store {store.display} at schema version {version}"
    if not migrated:
        return f"state store {store.display} is up to date (schema version {version})"
    applied = "; ".join(f"{migration.version}: {migration.description}" for migration in migrated)
    return f"state store {store.display} migrated to schema version {version} (applied {applied})"


def schema(_: argparse.Namespace) -> int:
    print(json.dumps(config_json_schema(), indent=2))
    return 0


def _console() -> Console:
    return Console(width=None if sys.stdout.isatty() else 160, highlight=False)
