"""`health-monitor`: run, once, check-config, incidents. User mistakes get one line on stderr."""

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from alerting.base import SinkContext
from alerting.dispatcher import Dispatcher
from checks.base import CheckContext
from monitor import __version__, event_loop, logs, registry
from monitor.clock import SystemClock
from monitor.config import Config, ConfigError, load_config
from monitor.daemon import Daemon, http_session
from monitor.durations import format_duration, parse_duration
from monitor.incident_log import IncidentLog
from monitor.incidents import IncidentManager, classify
from monitor.metrics import MonitorMetrics
from monitor.model import Finding, Incident, Status
from monitor.notifier import Notifier
from monitor.postmortem import render_postmortem, write_draft
from monitor.runner import RunResult, run_check
from monitor.schema import config_json_schema
from monitor.store import SqliteStore, StoreError

EXIT_CONFIG_ERROR = 2


class UsageError(Exception):
    """A mistake in how the command was called; printed as one line."""


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    except (UsageError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return args.usage_exit
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="health-monitor", description="Runs health checks and turns their findings into P1-P4 incidents."
    )
    parser.add_argument("--version", action="version", version=f"health-monitor {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Any, help_text: str, usage_exit: int = 1) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--config", metavar="PATH", help="config file (default: $MONITOR_CONFIG or ./monitor.toml)")
        sub.set_defaults(handler=handler, usage_exit=usage_exit)
        return sub

    run = command("run", _run, "Run every check on its schedule until SIGTERM or SIGINT.", EXIT_CONFIG_ERROR)
    run.add_argument("--interval", help="default interval for checks that set none, e.g. 60s")
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    run.add_argument(
        "--loop", default="auto", choices=event_loop.LOOP_NAMES, help="event loop (default: uvloop where installed)"
    )

    once = command("once", _once, "Run every (or the named) check once and print the findings.", 3)
    once.add_argument("--check", action="append", default=[], metavar="NAME", help="only this check (repeatable)")
    once.add_argument("--format", choices=["table", "json"], default="table")
    once.add_argument(
        "--notify",
        action="store_true",
        help="also open and resolve incidents in the state store and send their notifications (for cron, "
        "without a running daemon): a failing run opens at once, a good run resolves",
    )

    command("check-config", _check_config, "Validate the config and summarise it.", EXIT_CONFIG_ERROR)

    incidents = command("incidents", _incidents, "List open (or all recent) incidents from the state store.")
    incidents.add_argument("--all", action="store_true", help="include resolved incidents")
    incidents.add_argument("--format", choices=["table", "json"], default="table")

    ack = command("ack", _ack, "Acknowledge an incident: escalation stops.")
    ack.add_argument("id", type=int, help="incident id")
    ack.add_argument("--by", default=getpass.getuser(), help="who takes it (default: your user name)")
    ack.add_argument("--note", default="", help="what you are doing about it")

    postmortem = command("postmortem", _postmortem, "Print (or write) the post-mortem draft of an incident.")
    postmortem.add_argument("id", type=int, help="incident id")
    postmortem.add_argument("--output", metavar="FILE", help="write to FILE instead of printing")

    silence = command("silence", lambda _: 2, "Silence a check: findings are recorded, no one is paged.")
    actions = silence.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="silence a check for a while")
    add.add_argument("--check", required=True, help='check name, or "*" for every check')
    add.add_argument("--for", dest="duration", required=True, help="how long, e.g. 1h")
    add.add_argument("--reason", required=True)
    add.set_defaults(handler=_silence_add)
    listing = actions.add_parser("list", help="active and upcoming silences")
    listing.set_defaults(handler=_silence_list)
    remove = actions.add_parser("remove", help="end a silence now")
    remove.add_argument("id", type=int)
    remove.set_defaults(handler=_silence_remove)
    for sub in (add, listing, remove):
        sub.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help="config file")

    schema_help = "Print the JSON Schema of monitor.toml (for editor completion: Taplo, Even Better TOML)."
    schema = commands.add_parser("schema", help=schema_help, description=schema_help)
    schema.set_defaults(handler=_schema, usage_exit=1)
    return parser


def _run(args: argparse.Namespace) -> int:
    overrides = {"monitor": {"interval": args.interval}} if args.interval else None
    config = load_config(args.config, overrides)
    logs.configure(args.log_level)
    try:
        event_loop.run(Daemon(config, overrides=overrides).run(), args.loop)
    except event_loop.LoopUnavailableError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot start: {exc.strerror or exc}") from None
    return 0


def _once(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    logs.configure("warning")
    unknown = sorted(set(args.check) - set(config.checks))
    if unknown:
        raise UsageError(f"no check named {', '.join(unknown)} in {config.path} (known: {', '.join(config.checks)})")
    names = args.check or list(config.checks)
    results = asyncio.run(_run_once(config, names))
    if args.notify:
        asyncio.run(_notify_once(config, results))
    worst = max((result.status for result in results), default=Status.OK)
    if args.format == "json":
        print(json.dumps(_once_json(config, results, worst), indent=2))
    else:
        _print_results_table(config, results)
    return int(worst)


async def _run_once(config: Config, names: list[str]) -> list[RunResult]:
    clock = SystemClock()
    slots = asyncio.Semaphore(config.monitor.concurrency)
    async with http_session(config.monitor.concurrency) as http:
        context = CheckContext(http, clock, MonitorMetrics())

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
    with _open_store(config) as store:
        async with http_session(config.monitor.concurrency) as http:
            context = SinkContext(http, clock)
            sinks = {name: registry.create_sink(name, sink, context) for name, sink in config.sinks.items()}
            metrics = MonitorMetrics()
            dispatcher = Dispatcher(sinks, store, metrics, clock)
            dispatcher.resume()
            incidents = IncidentManager(store, IncidentLog(config.monitor.incident_log), clock, one_shot)
            notifier = Notifier(
                one_shot, dispatcher, metrics, clock,
                lambda event: write_draft(event.incident, store, config.monitor.name, clock.now()),
            )
            notifier.publish(incidents.unannounced_pages())
            for result in results:
                notifier.publish(incidents.observe(result.check, result.findings))
            notifier.publish(incidents.tick())
            notifier.flush(now=True)
            await dispatcher.drain(config.monitor.shutdown_grace)


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


def _check_config(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    console = _console()
    console.print(
        f"{config.path}: valid. monitor {config.monitor.name!r}, {len(config.checks)} checks, "
        f"{len(config.sinks)} sinks, listening on {config.server.listen}, state in {config.monitor.state_path}"
    )
    checks = Table("check", "type", "interval", "timeout", "thresholds (fail/ok)", title="checks")
    for row in _check_rows(config):
        checks.add_row(*row)
    console.print(checks)
    sinks = Table("sink", "type", "min severity", "resolved", title="sinks")
    for name, sink in config.sinks.items():
        sinks.add_row(name, sink.type, sink.min_severity.value, "yes" if sink.send_resolved else "no")
    console.print(sinks)
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


def _incidents(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    with _open_store(config) as store:
        incidents = store.recent_incidents() if args.all else store.open_incidents()
    if args.format == "json":
        print(json.dumps([incident.model_dump(mode="json") for incident in incidents], indent=2))
        return 0
    _print_incidents_table(incidents, "all recent incidents" if args.all else "open incidents")
    return 0


def _print_incidents_table(incidents: list[Incident], title: str) -> None:
    table = Table("id", "severity", "state", "incident", "opened", "summary", title=title)
    for incident in incidents:
        table.add_row(
            str(incident.id),
            incident.severity.value,
            incident.state,
            incident.key,
            f"{incident.opened_at:%Y-%m-%d %H:%M:%SZ}",
            incident.summary,
        )
    _console().print(table)


def _open_store(config: Config) -> SqliteStore:
    return SqliteStore(config.monitor.state_path)


def _ack(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    with _open_store(config) as store:
        incident = store.get_incident(args.id)
        if incident is None:
            raise UsageError(f"no incident {args.id}")
        if not incident.is_open:
            print(f"incident #{incident.id} ({incident.key}) is already resolved")
            return 0
        store.request_acknowledgement(incident.id, datetime.now(UTC), args.by, args.note)
    print(f"acknowledged #{incident.id} ({incident.key}) as {args.by}; the running daemon stops its escalation")
    return 0


def _postmortem(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    with _open_store(config) as store:
        incident = store.get_incident(args.id)
        if incident is None:
            raise UsageError(f"no incident {args.id}")
        draft = render_postmortem(incident, store, config.monitor.name, datetime.now(UTC))
    if args.output:
        Path(args.output).write_text(draft, encoding="utf-8")
        print(f"post-mortem draft of #{incident.id} written to {args.output}")
    else:
        print(draft, end="")
    return 0


def _silence_add(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.check != "*" and args.check not in config.checks:
        raise UsageError(f"no check named {args.check} in {config.path} (known: {', '.join(config.checks)})")
    try:
        seconds = parse_duration(args.duration)
    except ValueError as exc:
        raise UsageError(f"--for: {exc}") from None
    now = datetime.now(UTC)
    with _open_store(config) as store:
        silence = store.add_silence(args.check, now, now + timedelta(seconds=seconds), args.reason)
    print(f"silence #{silence.id}: {silence.check} until {silence.ends_at:%Y-%m-%d %H:%M:%S}Z ({args.reason})")
    return 0


def _silence_list(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    with _open_store(config) as store:
        silences = store.silences(datetime.now(UTC))
    table = Table("id", "check", "from", "until", "reason", title="silences")
    for silence in silences:
        table.add_row(
            str(silence.id), silence.check, f"{silence.starts_at:%Y-%m-%d %H:%M}Z",
            f"{silence.ends_at:%Y-%m-%d %H:%M}Z", silence.reason,
        )
    _console().print(table)
    return 0


def _silence_remove(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    with _open_store(config) as store:
        removed = store.remove_silence(args.id)
    if not removed:
        raise UsageError(f"no active silence {args.id}")
    print(f"silence #{args.id} removed; paging resumes for what is still failing")
    return 0


def _schema(_: argparse.Namespace) -> int:
    print(json.dumps(config_json_schema(), indent=2))
    return 0


def _console() -> Console:
    return Console(width=None if sys.stdout.isatty() else 160, highlight=False)
